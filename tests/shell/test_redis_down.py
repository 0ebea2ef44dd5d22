"""Redis configured but down: fail closed with 503 REPLAY_STORE_UNAVAILABLE and write nothing."""

from __future__ import annotations

import socket

import pytest

from tests.shell.support import snapshot
from tests.support import problem, sign_headers


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


@pytest.fixture
def down_app(make_app):
    return make_app(REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0", REDIS_SOCKET_TIMEOUT=0.5)


def test_activation_fails_closed(down_app, yb):
    p = yb.person(activate=False)
    proof = yb.proof(p.id_number, p.name)
    before = snapshot(down_app)
    c = down_app.test_client()
    body = {"id_number": p.id_number, "name": p.name, "identity_proof": proof, "device_id": "device-1"}
    problem(c.post("/api/v1/activations", json=body), 503, "REPLAY_STORE_UNAVAILABLE")
    assert snapshot(down_app) == before
    assert yb.admin("GET", f"/persons/{p.psn_no}").get_json()["activated"] is False
    # The proof was not spent: once Redis is back (the normal app), it still activates.
    assert yb.client.post("/api/v1/activations", json=body).status_code == 201


def test_institution_request_fails_closed(down_app, yb, caplog):
    inst = yb.institution()
    c = down_app.test_client()
    for path in ("/api/v1/_test/inst", "/api/v1/institutions/me"):
        h = sign_headers(inst.key_id, inst.secret, "GET", path, b"")
        problem(c.get(path, headers=h), 503, "REPLAY_STORE_UNAVAILABLE")
    assert any("redis unavailable" in r.getMessage() for r in caplog.records)  # operators see why
    # A bad signature is still a 401: Redis is only consulted for a correctly signed request.
    h = sign_headers(inst.key_id, "wrong", "GET", "/api/v1/_test/inst", b"")
    problem(c.get("/api/v1/_test/inst", headers=h), 401, "INSTITUTION_AUTH_FAILED")


def test_probes(down_app):
    c = down_app.test_client()
    assert c.get("/healthz").status_code == 200
    resp = c.get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["checks"] == {"database": True, "redis": False}


def test_requests_not_needing_redis_still_work(down_app, rows):
    c = down_app.test_client()
    from tests.support import ADMIN_TOKEN, make_id_number

    body = {
        "name": "王五",
        "id_number": make_id_number(),
        "insurance_type": "resident",
        "insured_region": "532900",
    }
    resp = c.post("/api/v1/admin/persons", json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert resp.status_code == 201


def test_redis_cluster_down_fails_closed(make_app, yb):
    """A configured Redis Cluster that cannot be reached: the app starts, and fails closed per request."""
    app = make_app(
        REDIS_URL=None, REDIS_CLUSTER_URL=f"redis://127.0.0.1:{_closed_port()}/0", REDIS_SOCKET_TIMEOUT=0.5
    )
    inst = yb.institution()
    c = app.test_client()
    h = sign_headers(inst.key_id, inst.secret, "GET", "/api/v1/_test/inst", b"")
    problem(c.get("/api/v1/_test/inst", headers=h), 503, "REPLAY_STORE_UNAVAILABLE")
    assert c.get("/readyz").status_code == 503
    assert c.get("/healthz").status_code == 200
