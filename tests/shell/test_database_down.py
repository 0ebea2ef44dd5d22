"""The database unreachable or restarted: 503 DATABASE_UNAVAILABLE, never a 500 or a leak, then recovery."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests.support import ADMIN_TOKEN, problem

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_unreachable_database_answers_503(make_app):
    # Nothing listens on port 1: every connection attempt is refused.
    app = make_app(DATABASE_URL="postgresql://postgres@127.0.0.1:1/test")
    client = app.test_client()
    resp = client.get("/api/v1/admin/persons/psn_x", headers=ADMIN)
    problem(resp, 503, "DATABASE_UNAVAILABLE")
    assert "127.0.0.1:1" not in resp.get_data(as_text=True)
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["checks"]["database"] is False
    assert client.get("/healthz").status_code == 200  # the process itself is up


def test_connections_killed_by_a_database_restart_cost_one_request(app, client, yb, is_postgres):
    """No pre-ping (yibao/db.py): a dead pooled connection fails one request, then the pool reconnects."""
    if not is_postgres:
        pytest.skip("needs PostgreSQL: a SQLite file has no server connection to lose")
    p = yb.person(activate=False)
    engine = app.extensions["yibao.db"]["engine"]
    # Check out several pooled connections at once so that every one of them is known, then kill them
    # all from another connection, as a server restart or failover would.
    conns = [engine.connect() for _ in range(3)]
    pids = [c.exec_driver_sql("SELECT pg_backend_pid()").scalar() for c in conns]
    for c in conns:
        c.close()
    killer = create_engine(app.config["DATABASE_URL"])
    with killer.connect() as k:
        for pid in pids:
            k.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    killer.dispose()
    first = client.get(f"/api/v1/admin/persons/{p.psn_no}", headers=ADMIN)
    problem(first, 503, "DATABASE_UNAVAILABLE")
    assert "terminat" not in first.get_data(as_text=True)
    # SQLAlchemy invalidated the whole pool on that disconnect: the next requests get fresh connections.
    for _ in range(3):
        assert client.get(f"/api/v1/admin/persons/{p.psn_no}", headers=ADMIN).status_code == 200
    assert client.get("/readyz").status_code == 200
