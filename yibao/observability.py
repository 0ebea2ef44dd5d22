"""JSON logs with a request id, Prometheus metrics, health and readiness probes."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sys
import time
from typing import Any

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import text

from .db import db
from .redis_store import redis_ext

_RID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

REQUESTS = Counter("yibao_http_requests_total", "HTTP requests", ["endpoint", "method", "status"])
LATENCY = Histogram(
    "yibao_http_request_duration_seconds",
    "HTTP request latency",
    ["endpoint", "method", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

_RESERVED = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    """One JSON object per line; the request id joins every line logged during a request."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        try:
            from flask import has_request_context

            if has_request_context():
                out["request_id"] = getattr(g, "request_id", None)
        except Exception:  # noqa: S110 - logging must never raise
            pass
        for key, value in vars(record).items():
            if key not in _RESERVED and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(level: str, json_logs: bool) -> None:
    root = logging.getLogger()
    if getattr(root, "_yibao_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_logs else logging.Formatter("%(levelname)s %(name)s %(message)s")
    )
    root.handlers[:] = [handler]
    root.setLevel(level)
    root._yibao_configured = True  # type: ignore[attr-defined]


ops = Blueprint("ops", __name__)


@ops.get("/healthz")
def healthz() -> Any:
    """The process is up."""
    return {"status": "ok"}


@ops.get("/readyz")
def readyz() -> Any:
    """Database and Redis are reachable."""
    checks = {"database": False, "redis": redis_ext.ping()}
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception:
        logging.getLogger(__name__).warning("readiness: database unreachable", exc_info=True)
    ok = all(checks.values())
    return {"status": "ok" if ok else "unavailable", "checks": checks}, 200 if ok else 503


@ops.get("/metrics")
def metrics() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        data = generate_latest(registry)
    else:
        data = generate_latest()
    return Response(data, mimetype=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    configure_logging(app.config["LOG_LEVEL"], app.config["JSON_LOGS"])
    access = logging.getLogger("yibao.access")

    @app.before_request
    def _start() -> None:
        rid = request.headers.get("X-Request-Id", "")
        g.request_id = rid if _RID_RE.match(rid) else secrets.token_hex(8)
        request.request_id = g.request_id  # type: ignore[attr-defined]
        g.started = time.perf_counter()

    @app.after_request
    def _finish(resp: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        endpoint = request.url_rule.rule if request.url_rule else "<unmatched>"
        REQUESTS.labels(endpoint, request.method, str(resp.status_code)).inc()
        LATENCY.labels(endpoint, request.method, str(resp.status_code)).observe(elapsed)
        resp.headers["X-Request-Id"] = g.get("request_id", "")
        # Paths only (URLs carry opaque ids, never PII); no query strings or bodies.
        access.info(
            "request",
            extra={
                "method": request.method,
                "endpoint": endpoint,
                "status": resp.status_code,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )
        return resp

    app.register_blueprint(ops)
