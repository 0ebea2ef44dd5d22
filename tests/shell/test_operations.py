"""Probes, Prometheus metrics, request ids and JSON logs (without PII), OpenAPI and Swagger UI."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from tests.support import ADMIN_TOKEN, make_id_number, problem
from yibao.observability import JsonFormatter


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Everything logged (any logger, DEBUG and up) as the JSON lines production writes."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield buf
    root.removeHandler(handler)
    root.setLevel(old)


def lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_healthz(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.get_json() == {"status": "ok"}


def test_readyz(client):
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok", "checks": {"database": True, "redis": True}}


def test_readyz_database_down(make_app, tmp_path):
    broken = make_app(DATABASE_URL=f"sqlite:///{tmp_path}/missing-dir/x.sqlite3").test_client()
    resp = broken.get("/readyz")
    assert resp.status_code == 503 and resp.get_json()["checks"]["database"] is False
    assert broken.get("/healthz").status_code == 200


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_and_latency_by_endpoint_and_status(client, yb):
    before = client.get("/metrics").get_data(as_text=True)
    n0 = _sample(before, "yibao_http_requests_total", endpoint="/healthz", method="GET", status="200")
    m0 = _sample(
        before, "yibao_http_requests_total", endpoint="/api/v1/admin/persons", method="POST", status="401"
    )
    for _ in range(3):
        client.get("/healthz")
    client.post("/api/v1/admin/persons", json={})
    client.get("/api/v1/admin/persons/psn_x", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    text = resp.get_data(as_text=True)
    assert (
        _sample(text, "yibao_http_requests_total", endpoint="/healthz", method="GET", status="200") == n0 + 3
    )
    assert (
        _sample(
            text, "yibao_http_requests_total", endpoint="/api/v1/admin/persons", method="POST", status="401"
        )
        == m0 + 1
    )
    # Endpoints are URL rules, so opaque ids do not explode the label space.
    assert _sample(
        text,
        "yibao_http_requests_total",
        endpoint="/api/v1/admin/persons/<psn_no>",
        method="GET",
        status="404",
    )
    assert "psn_x" not in text
    assert (
        _sample(
            text, "yibao_http_request_duration_seconds_count", endpoint="/healthz", method="GET", status="200"
        )
        >= 3
    )
    assert 'yibao_http_request_duration_seconds_bucket{endpoint="/healthz"' in text
    client.get("/no/such/thing")
    assert 'endpoint="<unmatched>"' in client.get("/metrics").get_data(as_text=True)


def test_request_id_echoed_and_logged(client, json_log):
    resp = client.get("/healthz", headers={"X-Request-Id": "req-abc.123"})
    assert resp.headers["X-Request-Id"] == "req-abc.123"
    access = [r for r in lines(json_log) if r["logger"] == "yibao.access"]
    assert access and access[-1]["request_id"] == "req-abc.123"
    rec = access[-1]
    assert rec["endpoint"] == "/healthz" and rec["status"] == 200 and rec["method"] == "GET"
    assert rec["level"] == "INFO" and "duration_ms" in rec and rec["ts"].endswith("Z")


def test_request_id_generated_or_replaced(client, json_log):
    generated = client.get("/healthz").headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{16}", generated)
    hostile = client.get("/healthz", headers={"X-Request-Id": 'x" {"level": "ERROR"}'}).headers[
        "X-Request-Id"
    ]
    assert re.fullmatch(r"[0-9a-f]{16}", hostile)  # header injection into logs refused
    too_long = client.get("/healthz", headers={"X-Request-Id": "a" * 65}).headers["X-Request-Id"]
    assert too_long != "a" * 65
    ids = [r["request_id"] for r in lines(json_log) if r["logger"] == "yibao.access"]
    assert ids == [generated, hostile, too_long]


def test_logs_never_contain_id_number_or_name(app, client, yb, json_log):
    p = yb.person(name="欧阳小明", id_number=make_id_number(), balance=100, activate=False)
    yb.activate(p)
    yb.client.post("/api/v1/sessions/refresh", json={"refresh_token": p.refresh_token})
    # Failures too: mismatched proof, unknown person, validation error echoing the value, a crash.
    client.post(
        "/api/v1/activations",
        json={"id_number": p.id_number, "name": "欧阳大明", "identity_proof": "x", "device_id": "dev-12345"},
    )
    yb.admin("POST", "/persons", {"name": p.name, "id_number": p.id_number[:17], "insurance_type": "x"})
    yb.admin(
        "POST",
        "/persons",
        {"name": p.name, "id_number": p.id_number, "insurance_type": "employee", "insured_region": "532900"},
    )
    yb.admin("POST", "/persons/lookups", {"id_number": p.id_number})
    yb.admin("POST", "/persons/lookups", {"id_number": p.id_number[:17] + "Y"})
    client.get("/api/v1/_test/boom")
    text = json_log.getvalue()
    assert text, "nothing was logged"
    assert "yibao.access" in text
    assert p.id_number not in text and p.id_number[:17] not in text
    assert p.name not in text
    assert p.access_token not in text and p.refresh_token not in text


def test_openapi_documents_security(client):
    resp = client.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    spec = resp.get_json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["AdminBearer"]["scheme"] == "bearer"
    assert schemes["UserBearer"]["bearerFormat"] == "JWT"
    assert schemes["InstitutionSignature"]["in"] == "header"
    assert "X-Yb-Nonce" in schemes["InstitutionSignature"]["description"]
    paths = spec["paths"]
    assert paths["/api/v1/admin/persons"]["post"]["security"] == [{"AdminBearer": []}]
    assert "401" in paths["/api/v1/admin/persons"]["post"]["responses"]
    assert paths["/api/v1/admin/institutions/{org_id}/secret-rotations"]["post"]["security"] == [
        {"AdminBearer": []}
    ]
    assert paths["/api/v1/sessions/current"]["delete"]["security"] == [{"UserBearer": []}]
    me = paths["/api/v1/institutions/me"]["get"]
    assert me["security"] == [{"InstitutionSignature": []}]
    assert {"401", "503"} <= set(me["responses"])
    assert "security" not in paths["/api/v1/activations"]["post"]
    assert "Problem" in spec["components"]["schemas"]


def test_swagger_ui(client):
    resp = client.get("/api/v1/docs")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert "swagger-ui" in html and "openapi.json" in html


def test_problem_json_on_every_layer(client):
    problem(client.get("/metrics/x"), 404, "NOT_FOUND")
    problem(client.post("/healthz"), 405, "METHOD_NOT_ALLOWED")
