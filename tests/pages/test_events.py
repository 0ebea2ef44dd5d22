"""The push channel without a browser: publish, long poll with a cursor, bounded wait, failures."""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis

from tests.support import problem
from yibao.events import stream
from yibao.events.stream import publish


def _pid(app, psn_no: str) -> int:
    from yibao.db import db
    from yibao.registry import services as registry

    with app.app_context(), db.uow(readonly=True) as uow:
        return registry.person_by_psn_no(uow, psn_no).id


def test_events_after_cursor_at_once_then_nothing_lost(app, yb, redis_client):
    p = yb.person()
    pid = _pid(app, p.psn_no)
    first = yb.as_user(p, "GET", "/events?wait=0")
    assert first.status_code == 200, first.get_json()
    start = first.get_json()
    assert start == {"events": [], "next": "0-0"}

    scan = {
        "at": "2025-01-01T00:00:00Z",
        "institution": "测试药房",
        "business_type": "02121",
        "result": "accepted",
        "code": None,
    }
    id1 = publish(redis_client, pid, "scan", scan)
    id2 = publish(redis_client, pid, "payment", {"pay_order_id": "PO1", "status": "paid", "total_fen": 100})
    assert id1 and id2

    got = yb.as_user(p, "GET", f"/events?after={start['next']}&wait=25")
    body = got.get_json()
    assert [e["kind"] for e in body["events"]] == ["scan", "payment"]
    assert body["events"][0]["data"] == scan
    assert body["next"] == id2
    # A reconnection with an older cursor gets what came after it again: nothing is lost.
    again = yb.as_user(p, "GET", f"/events?after={id1}&wait=0").get_json()
    assert [e["id"] for e in again["events"]] == [id2]
    # Without a cursor: only what comes from now on.
    assert yb.as_user(p, "GET", "/events?wait=0").get_json() == {"events": [], "next": id2}


def test_events_are_per_person(app, yb, redis_client):
    a, b = yb.person(), yb.person()
    publish(redis_client, _pid(app, a.psn_no), "scan", {"result": "accepted"})
    assert yb.as_user(b, "GET", "/events?after=0-0&wait=0").get_json()["events"] == []
    assert len(yb.as_user(a, "GET", "/events?after=0-0&wait=0").get_json()["events"]) == 1


def test_wait_blocks_until_an_event_and_is_bounded(app, yb, redis_url):
    p = yb.person()
    pid = _pid(app, p.psn_no)
    r = redis.Redis.from_url(redis_url)
    timer = threading.Timer(
        0.5, lambda: publish(r, pid, "scan", {"result": "refused", "code": "VOUCHER_EXPIRED"})
    )
    t0 = time.monotonic()
    timer.start()
    body = yb.as_user(p, "GET", "/events?after=0-0&wait=5").get_json()
    took = time.monotonic() - t0
    assert [e["data"]["code"] for e in body["events"]] == ["VOUCHER_EXPIRED"]
    assert 0.3 < took < 3
    # Nothing comes: the answer after `wait` seconds, empty, with the same cursor.
    t0 = time.monotonic()
    empty = yb.as_user(p, "GET", f"/events?after={body['next']}&wait=1").get_json()
    assert empty == {"events": [], "next": body["next"]}
    assert 0.8 < time.monotonic() - t0 < 3
    r.close()


@pytest.mark.parametrize("query", ["wait=26", "wait=-1", "after=abc", "after=1-2-3", "after=%24"])
def test_bad_queries_are_validation_errors(yb, query):
    p = yb.person()
    problem(yb.as_user(p, "GET", f"/events?{query}"), 422, "VALIDATION_FAILED")


def test_events_need_a_user(client):
    problem(client.get("/api/v1/events"), 401, "AUTHENTICATION_REQUIRED")


def test_publish_never_raises(caplog):
    class Down:
        def evalsha(self, *_):
            raise redis.ConnectionError("down")

        eval = evalsha

    assert publish(Down(), 1, "scan", {"result": "accepted"}) is None
    assert publish(Down(), 1, "bogus", {}) is None
    assert "event not published" in caplog.text


def test_stream_is_trimmed_and_expires(redis_client):
    for i in range(300):
        publish(redis_client, 424242, "scan", {"n": i})
    key = stream.key(424242)
    assert redis_client.xlen(key) < 300  # ~MAXLEN: trimmed in whole nodes
    assert 0 < redis_client.ttl(key) <= stream.TTL


def test_redis_down_is_a_503(app, yb, monkeypatch):
    p = yb.person()

    def down(*_a, **_k):
        raise redis.ConnectionError("down")

    monkeypatch.setattr(stream, "read", down)
    problem(yb.as_user(p, "GET", "/events?wait=0"), 503, "EVENTS_UNAVAILABLE")


def test_pages_are_served_with_a_strict_csp(client):
    for path in ("/app/", "/counter/"):
        r = client.get(path)
        assert r.status_code == 200
        assert r.mimetype == "text/html"
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "unsafe-inline" not in csp and "data:" not in csp
    js = client.get("/app/app.js")
    assert js.status_code == 200 and js.mimetype == "text/javascript"
    assert client.get("/counter/shared/sign.js").status_code == 200
    assert client.get("/app/shared/../../__init__.py").status_code == 404
    assert client.get("/app/nothing.js").status_code == 404


def test_events_documented_in_openapi(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    op = spec["paths"]["/api/v1/events"]["get"]
    assert {p["name"] for p in op["parameters"]} >= {"after", "wait"}
    assert "EVENTS_UNAVAILABLE" in str(op["responses"])


def test_publish_survives_a_server_that_forgot_its_scripts(redis_client):
    """SCRIPT FLUSH (a restarted Redis): the next publish sends the script whole and is kept."""
    stream.publish(redis_client, 42, "scan", {"n": 1})
    redis_client.script_flush()
    assert stream.publish(redis_client, 42, "scan", {"n": 2}) is not None
    entries = redis_client.xrange(stream.key(42))
    assert [json.loads(f[b"data"])["n"] for _, f in entries][-2:] == [1, 2]
    assert 0 < redis_client.ttl(stream.key(42)) <= stream.TTL
