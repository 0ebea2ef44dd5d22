"""The contract test's world: one app on its own database, a real activated user, a real institution,
the operator token, and request signing at the WSGI edge (the bytes the service verifies)."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from flask import Flask
from werkzeug.wrappers import Request

from tests.support import ADMIN_TOKEN, TEST_SECRET, Institution, Person, Yb, reset_postgres, sign_headers
from yibao import create_app

# Marker header a hook puts on a request that must be signed as the institution; the WSGI wrapper
# below replaces it by X-Yb-Key/Timestamp/Nonce/Signature over the final method, path, query and body.
SIGN_MARKER = "X-Contract-Sign"


def app_config(database_url: str, redis_url: str) -> dict[str, Any]:
    return {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "SECRET_KEY": TEST_SECRET,
        "SANDBOX_IDENTITY_ENABLED": True,
        "JSON_LOGS": False,
        "LOG_LEVEL": "WARNING",  # the first app configures logging for the process: as tests/conftest.py
        "EVENTS_WAIT_MAX": 1,  # long polls answer within 1 s here (the document still allows wait up to 25)
    }


def document_operations() -> list[tuple[str, str]]:
    """(METHOD, path) of every operation of the app's own OpenAPI document (no database is touched)."""
    app = create_app(app_config("sqlite://", "redis://127.0.0.1:1/0"))
    try:
        spec = app.test_client().get("/api/v1/openapi.json").get_json()
    finally:
        app.extensions["yibao.db"]["engine"].dispose()
    methods = ("get", "put", "post", "patch", "delete")
    return [(m.upper(), path) for path, ops in spec["paths"].items() for m in ops if m in methods]


def signing_middleware(wsgi_app: Callable, inst: Institution) -> Callable:
    """Sign, as `inst`, every request carrying SIGN_MARKER: over what the service will read."""

    def app(environ: dict, start_response: Callable) -> Any:
        key = "HTTP_" + SIGN_MARKER.upper().replace("-", "_")
        if environ.pop(key, None) is not None:
            req = Request(environ)
            body = req.get_data(cache=True)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            signed = sign_headers(
                inst.key_id,
                inst.secret,
                req.method,
                req.path,
                body,
                query=req.query_string.decode("latin-1"),
            )
            for name, value in signed.items():
                environ["HTTP_" + name.upper().replace("-", "_")] = value
        return wsgi_app(environ, start_response)

    return app


@dataclass
class World:
    app: Flask
    yb: Yb
    user: Person
    institution: Institution

    def refresh_user(self) -> None:
        """A new session for the user (after an operation that may have ended it)."""
        self.yb.activate(self.user, device_id=self.user.device_id)

    def auth_headers(self, security: list[dict]) -> dict[str, str]:
        """Credentials for the first security requirement of the operation (none if it has none)."""
        schemes = [name for req in security for name in req]
        if not schemes:
            return {}
        scheme = schemes[0]
        if scheme == "UserBearer":
            return {"Authorization": f"Bearer {self.user.access_token}"}
        if scheme == "AdminBearer":
            return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        if scheme == "InstitutionSignature":
            return {SIGN_MARKER: "1"}
        raise AssertionError(f"unknown security scheme {scheme}")


def build_world(db_template: str, redis_url: str, tmp: Path, is_postgres: bool) -> Iterator[World]:
    if is_postgres:
        reset_postgres(db_template)
        url = db_template
    else:
        path = tmp / "contract.sqlite3"
        shutil.copyfile(db_template, path)
        url = f"sqlite:///{path}"
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    r.close()
    app = create_app(app_config(url, redis_url))
    yb = Yb(app.test_client())
    user = yb.person(balance=100_000)
    inst = yb.institution()
    app.wsgi_app = signing_middleware(app.wsgi_app, inst)  # type: ignore[method-assign]
    try:
        yield World(app, yb, user, inst)
    finally:
        app.extensions["yibao.db"]["engine"].dispose()


def examples_per_operation() -> int:
    return int(os.environ.get("YIBAO_CONTRACT_EXAMPLES", "20"))
