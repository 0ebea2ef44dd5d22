"""The per-worker institution cache of signed calls: what it holds, and that every change made through
the registry (admin API, CLI) reaches every worker on its very next request. Two apps on one database
and one Redis are two workers here; tests/shell/test_institution_cache_workers.py runs real gunicorn
workers."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import event, text

from tests.support import problem, sign_headers
from yibao.auth import institution_cache
from yibao.auth.institution_cache import InstitutionCache, _Entry, version_key
from yibao.auth.institutions import CurrentInstitution
from yibao.db import uow_from
from yibao.registry import services as registry

PATH = "/api/v1/_test/inst"


def call(client, inst, key_id=None, secret=None, nonce=None):
    h = sign_headers(key_id or inst.key_id, secret or inst.secret, "GET", PATH, b"", nonce=nonce)
    return client.get(PATH, headers=h)


class Statements:
    """Counts the SQL statements an app's engine runs."""

    def __init__(self, app):
        self.n = 0
        self.engine = app.extensions["yibao.db"]["engine"]
        event.listen(self.engine, "before_cursor_execute", self._count)

    def _count(self, *_args):
        self.n += 1

    def close(self):
        event.remove(self.engine, "before_cursor_execute", self._count)


def cached(app, inst):
    return app.extensions["yibao.institutions"].cache.get(inst.key_id)


# ---------------------------------------------------------------- the cache itself


def _entry(key_id: str = "ak_1", loaded_at: float = 0.0) -> _Entry:
    current = CurrentInstitution(1, "org_1", "pharmacy", "532900", ("02121",), "药房")
    return _Entry(current, b"secret", b"token", loaded_at)


def test_cache_unit_age_limit(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(institution_cache.time, "monotonic", lambda: clock[0])
    cache = InstitutionCache(max_age=60)
    cache.put("ak_1", _entry(loaded_at=1000.0))
    assert cache.get("ak_1").secret == b"secret"
    clock[0] = 1060.0
    assert cache.get("ak_1") is not None  # at the limit
    clock[0] = 1060.5
    assert cache.get("ak_1") is None and len(cache) == 0  # older: gone, reloaded by the caller


def test_cache_unit_bounded_and_droppable():
    cache = InstitutionCache(max_age=60, max_entries=3)
    for i in range(5):
        cache.put(f"ak_{i}", _entry(loaded_at=institution_cache.time.monotonic()))
    assert len(cache) == 3
    assert cache.get("ak_0") is None and cache.get("ak_4") is not None  # the oldest went first
    cache.drop("ak_4")
    assert cache.get("ak_4") is None
    cache.drop("ak_nope")  # dropping an absent key is harmless


def test_cache_unit_zero_age_caches_nothing():
    cache = InstitutionCache(max_age=0)
    cache.put("ak_1", _entry())
    assert cache.get("ak_1") is None and len(cache) == 0


def test_version_key_shares_the_nonce_slot():
    from redis.cluster import key_slot

    from yibao.auth.institutions import SignedRequest

    req = SignedRequest("ak_x", "1", "n-1", "0" * 64, "GET", "/", "", b"")
    assert key_slot(version_key("ak_x").encode()) == key_slot(req.nonce_key.encode())


# ---------------------------------------------------------------- signed calls through it


def test_a_cached_call_reads_no_database(app, client, yb):
    inst = yb.institution()
    assert call(client, inst).status_code == 200
    entry = cached(app, inst)
    assert entry is not None and entry.current.org_id == inst.org_id
    statements = Statements(app)
    try:
        for _ in range(3):
            assert call(client, inst).status_code == 200
    finally:
        statements.close()
    assert statements.n == 0


def test_a_cached_call_is_one_redis_round_trip(app, client, yb):
    inst = yb.institution()
    assert call(client, inst).status_code == 200
    real = app.extensions["yibao.redis"]
    sent: list[str] = []

    class Counting:
        def __getattr__(self, name):
            sent.append(name)
            return getattr(real, name)

    app.extensions["yibao.redis"] = Counting()
    try:
        assert call(client, inst).status_code == 200
    finally:
        app.extensions["yibao.redis"] = real
    assert sent == ["evalsha"]


def test_replayed_nonce_refused_from_the_cache(client, yb):
    inst = yb.institution()
    assert call(client, inst, nonce="n-0").status_code == 200
    assert call(client, inst, nonce="n-1").status_code == 200  # cached now
    body = problem(call(client, inst, nonce="n-1"), 401, "INSTITUTION_AUTH_FAILED")
    assert body["reason"] == "NONCE_REUSED"


def test_wrong_secret_with_a_cached_key_is_refused_by_the_database(app, client, yb):
    inst = yb.institution()
    assert call(client, inst).status_code == 200
    body = problem(call(client, inst, secret="wrong"), 401, "INSTITUTION_AUTH_FAILED")
    assert body["reason"] == "SIGNATURE_MISMATCH"
    assert call(client, inst).status_code == 200


@pytest.mark.parametrize("how", ["admin", "cli"])
def test_disable_reaches_every_worker_at_once(app, make_app, yb, runner, how):
    inst = yb.institution()
    workers = [app.test_client(), make_app().test_client(), make_app().test_client()]
    for c in workers:
        assert call(c, inst).status_code == 200  # each worker caches it

    def set_status(status: str) -> None:
        if how == "admin":
            assert yb.admin("PATCH", f"/institutions/{inst.org_id}", {"status": status}).status_code == 200
        else:
            result = runner.invoke(args=["institution", "update", inst.org_id, "--status", status])
            assert result.exit_code == 0, result.output

    set_status("disabled")
    for c in workers:
        body = problem(call(c, inst), 403, "INSTITUTION_DISABLED")
        assert body["reason"] == "KEY_DISABLED"
    set_status("active")
    for c in workers:
        assert call(c, inst).status_code == 200


@pytest.mark.parametrize("how", ["admin", "cli"])
def test_rotation_reaches_every_worker_at_once(app, make_app, yb, runner, how):
    inst = yb.institution()
    workers = [app.test_client(), make_app().test_client()]
    for c in workers:
        assert call(c, inst).status_code == 200
    if how == "admin":
        new = yb.admin("POST", f"/institutions/{inst.org_id}/secret-rotations").get_json()
    else:
        result = runner.invoke(args=["institution", "rotate-secret", inst.org_id])
        assert result.exit_code == 0, result.output
        new = json.loads(result.output)
    for c in workers:
        body = problem(call(c, inst), 401, "INSTITUTION_AUTH_FAILED")
        assert body["reason"] == "KEY_UNKNOWN"  # the old pair, refused at once
        problem(call(c, inst, secret=new["secret"]), 401, "INSTITUTION_AUTH_FAILED")
        assert call(c, inst, key_id=new["key_id"], secret=new["secret"]).status_code == 200


def test_a_change_deletes_the_version_token(app, client, yb, redis_client):
    inst = yb.institution()
    assert call(client, inst).status_code == 200
    key = version_key(inst.key_id)
    token = redis_client.get(key)
    assert token is not None and len(token) == 32 and cached(app, inst).token == token
    yb.admin("PATCH", f"/institutions/{inst.org_id}", {"services": ["02121"]})
    assert redis_client.get(key) is None
    assert call(client, inst).status_code == 200  # reloaded: a new random token
    assert redis_client.get(key) not in (None, token)


def test_flushed_redis_means_reload(app, client, yb, redis_client):
    """After a flush (or a restart without persistence) no token matches a cached one: reload."""
    inst = yb.institution()
    assert call(client, inst).status_code == 200
    with app.extensions["yibao.db"]["engine"].begin() as conn:  # behind the registry's back
        conn.execute(
            text("UPDATE institutions SET status = 'disabled' WHERE org_id = :o"), {"o": inst.org_id}
        )
    redis_client.flushdb()
    problem(call(client, inst), 403, "INSTITUTION_DISABLED")


def test_raw_sql_changes_are_bounded_by_the_cache_age(make_app, yb, monkeypatch):
    """The documented limit: a change made behind the registry's back (raw SQL, no token deleted) is
    seen once the cached entry is older than INSTITUTION_CACHE_SECONDS."""
    app = make_app(INSTITUTION_CACHE_SECONDS=30)
    client = app.test_client()
    inst = yb.institution()
    assert call(client, inst).status_code == 200
    with app.extensions["yibao.db"]["engine"].begin() as conn:
        conn.execute(
            text("UPDATE institutions SET status = 'disabled' WHERE org_id = :o"), {"o": inst.org_id}
        )
    assert call(client, inst).status_code == 200  # still the cached row
    later = institution_cache.time.monotonic() + 31
    monkeypatch.setattr(institution_cache.time, "monotonic", lambda: later)
    problem(call(client, inst), 403, "INSTITUTION_DISABLED")


def test_no_cache_when_the_age_is_zero(make_app, yb):
    app = make_app(INSTITUTION_CACHE_SECONDS=0)
    client = app.test_client()
    inst = yb.institution()
    assert call(client, inst).status_code == 200
    assert cached(app, inst) is None
    assert call(client, inst).status_code == 200


def test_disabled_institutions_are_not_cached(app, client, yb):
    inst = yb.institution()
    yb.admin("PATCH", f"/institutions/{inst.org_id}", {"status": "disabled"})
    problem(call(client, inst), 403, "INSTITUTION_DISABLED")
    assert cached(app, inst) is None


def test_redis_down_at_the_change_is_logged_and_bounded(app, client, yb, caplog):
    """The change is committed (the database is the truth) and the local entry dropped at once;
    signed calls fail closed while Redis is down."""
    inst = yb.institution()
    assert call(client, inst).status_code == 200
    real = app.extensions["yibao.redis"]

    class Down:
        def __getattr__(self, name):
            import redis

            def fail(*_a, **_k):
                raise redis.ConnectionError("down")

            return fail

    app.extensions["yibao.redis"] = Down()
    try:
        with caplog.at_level(logging.ERROR, logger="yibao.auth.institution_cache"):
            resp = yb.admin("PATCH", f"/institutions/{inst.org_id}", {"status": "disabled"})
        assert resp.status_code == 200 and resp.get_json()["status"] == "disabled"
        assert any("not invalidated" in r.getMessage() for r in caplog.records)
        assert cached(app, inst) is None
        # this worker reads the row again: refused from the database, before Redis is needed
        problem(call(client, inst), 403, "INSTITUTION_DISABLED")
        other = yb.institution()  # an active one: Redis down means refused, never let through
        problem(call(client, other), 503, "REPLAY_STORE_UNAVAILABLE")
    finally:
        app.extensions["yibao.redis"] = real
    problem(call(client, inst), 403, "INSTITUTION_DISABLED")


def test_changes_outside_the_app_are_refused(app, yb):
    """Nothing outside the application could tell the workers' caches: such a change fails loudly."""
    inst = yb.institution()
    engine = app.extensions["yibao.db"]["engine"]
    with pytest.raises(RuntimeError, match="caches must be told"), uow_from(engine) as uow:
        registry.update_institution(uow, inst.org_id, status="disabled")
        uow.commit()
    assert yb.admin("GET", f"/institutions/{inst.org_id}").get_json()["status"] == "active"
