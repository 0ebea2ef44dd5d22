"""The retry policy against a real HTTP server that fails first: what is retried, with which key."""

from __future__ import annotations

import re
import socket
import threading

import pytest

from yibao_client import InstitutionClient, errors, signing

from .fakeserver import FakeServer, Reply, Reset, problem

KEY_ID, SECRET = "ak_retry_test", "retry-secret-0123456789"
ITEMS = [{"drug_code": "XA01", "drug_name": "布洛芬", "otc": True, "quantity": 1, "unit_price_fen": 1000}]
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def client(server: FakeServer, sleeps: list[float], **kw) -> InstitutionClient:
    return InstitutionClient(server.url, KEY_ID, SECRET, sleep=sleeps.append, **kw)


def assert_signed(seen) -> None:
    """The request carries a valid signature over exactly what was sent."""
    h = seen.headers
    assert h["x-yb-key"] == KEY_ID
    assert re.fullmatch(r"[0-9a-f]{24}", h["x-yb-nonce"])
    canonical = signing.canonical_string(
        seen.method, seen.target, h["x-yb-timestamp"], h["x-yb-nonce"], seen.body
    )
    assert h["x-yb-signature"] == signing.signature(SECRET, canonical)


def test_order_survives_503_reset_and_key_in_use_with_one_key(server, sleeps):
    server.then(
        problem(503, "REPLAY_STORE_UNAVAILABLE"),
        Reset(),
        problem(409, "IDEMPOTENCY_KEY_IN_USE"),
        Reply(201, {"pay_order_id": "po_1", "status": "created"}),
    )
    result = client(server, sleeps).create_order(merchant_order_no="M-1", items=ITEMS, pay_auth_no="pa_1")
    assert result == {"pay_order_id": "po_1", "status": "created"}
    assert result.status == 201 and result.attempts == 4
    seen = server.requests
    assert len(seen) == 4
    keys = {s.headers["idempotency-key"] for s in seen}
    assert len(keys) == 1 and UUID4.fullmatch(keys.pop())  # generated once, reused on every retry
    assert len({s.headers["x-yb-nonce"] for s in seen}) == 4  # signed afresh each attempt
    assert len({s.headers["x-yb-signature"] for s in seen}) == 4
    assert len({s.body for s in seen}) == 1
    for s in seen:
        assert s.method == "POST" and s.target == "/api/v1/payment-orders"
        assert_signed(s)
    assert seen[0].json["items"][0]["drug_name"] == "布洛芬"
    # Exponential backoff with jitter: step 0.2 * 2^(n-1), times [0.5, 1.5).
    assert len(sleeps) == 3
    for n, delay in enumerate(sleeps):
        step = 0.2 * 2**n
        assert 0.5 * step <= delay < 1.5 * step


def test_a_given_key_is_sent_on_every_attempt(server, sleeps):
    server.then(problem(503, "DATABASE_UNAVAILABLE"), Reply(200, {"status": "paid"}))
    result = client(server, sleeps).pay("po_1", idempotency_key="pos-7-order-88-pay")
    assert result["status"] == "paid" and result.attempts == 2
    assert [s.headers["idempotency-key"] for s in server.requests] == ["pos-7-order-88-pay"] * 2
    assert server.requests[0].target == "/api/v1/payment-orders/po_1/pay"
    assert server.requests[0].body == b""


def test_refund_and_cancel_get_keys_and_verification_does_not(server, sleeps):
    c = client(server, sleeps)
    c.refund("po_1", 500, reason="退一盒")
    c.cancel("po_2")
    c.verify("YB1:xyz", "02121", "op", "王药师", "pos-1", "biz-1")
    c.me()
    refund, cancel, verify, me = server.requests
    assert UUID4.fullmatch(refund.headers["idempotency-key"])
    assert refund.json == {"reason": "退一盒", "amount_fen": 500}
    assert UUID4.fullmatch(cancel.headers["idempotency-key"])
    assert "idempotency-key" not in verify.headers and "idempotency-key" not in me.headers


def test_every_post_gets_a_key_when_asked(server, sleeps):
    client(server, sleeps, idempotency_keys_on_all_posts=True).verify("YB1:x", "02121", "o", "n", "d", "b")
    assert UUID4.fullmatch(server.requests[0].headers["idempotency-key"])


@pytest.mark.parametrize(
    ("reply", "exc", "code"),
    [
        (
            problem(422, "VALIDATION_FAILED", errors={"items": ["Missing data for required field."]}),
            errors.ValidationFailed,
            "VALIDATION_FAILED",
        ),
        (
            problem(401, "INSTITUTION_AUTH_FAILED", reason="TIMESTAMP_SKEW"),
            errors.InstitutionAuthFailed,
            "INSTITUTION_AUTH_FAILED",
        ),
        (problem(409, "ORDER_STATE_CONFLICT"), errors.OrderStateConflict, "ORDER_STATE_CONFLICT"),
        (problem(422, "IDEMPOTENCY_KEY_REUSED"), errors.IdempotencyKeyReused, "IDEMPOTENCY_KEY_REUSED"),
        (Reply(502, b"<html>Bad Gateway</html>"), errors.NonProblemResponse, "NON_PROBLEM_RESPONSE"),
    ],
)
def test_other_errors_are_never_retried(server, sleeps, reply, exc, code):
    server.then(reply)
    with pytest.raises(exc) as info:
        client(server, sleeps).pay("po_1")
    assert info.value.code == code
    assert len(server.requests) == 1 and sleeps == []
    if exc is errors.ValidationFailed:
        assert info.value.errors == {"items": ["Missing data for required field."]}
    if exc is errors.InstitutionAuthFailed:
        assert info.value.reason == "TIMESTAMP_SKEW" and info.value.request_id == "rid-test"


def test_post_without_key_is_not_retried_after_a_reset(server, sleeps):
    server.then(Reset(), Reply(200, {"ec_token": "ec_1"}))
    with pytest.raises(errors.ConnectionFailed) as info:
        client(server, sleeps).verify("YB1:x", "02121", "op", "name", "dev", "biz")
    assert info.value.code == "NETWORK_ERROR" and info.value.status is None
    assert len(server.requests) == 1 and sleeps == []  # the code may be consumed: never sent twice


def test_post_without_key_is_not_retried_after_a_timeout(server, sleeps):
    server.then(Reply(200, {"ec_token": "ec_1"}, delay=1.0))
    with pytest.raises(errors.ConnectionFailed):
        client(server, sleeps, timeout=0.3).verify("YB1:x", "02121", "op", "name", "dev", "biz")
    assert len(server.requests) == 1 and sleeps == []


def test_get_is_retried_after_a_timeout_and_a_reset(server, sleeps):
    server.then(Reply(200, {"org_id": "late"}, delay=1.0), Reset(), Reply(200, {"org_id": "org_1"}))
    result = client(server, sleeps, timeout=0.3).me()
    assert result["org_id"] == "org_1" and result.attempts == 3
    assert len({s.headers["x-yb-nonce"] for s in server.requests}) == 3


def test_post_without_key_is_retried_on_503(server, sleeps):
    server.then(problem(503, "REPLAY_STORE_UNAVAILABLE"), Reply(200, {"ec_token": "ec_1"}))
    result = client(server, sleeps).verify("YB1:x", "02121", "op", "name", "dev", "biz")
    assert result["ec_token"] == "ec_1" and result.attempts == 2


def test_a_refused_connection_is_retried_even_for_a_post(sleeps):
    """Nothing was sent: a POST without key is retried. The server comes up during the backoff."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started: list = []

    def sleep(delay: float) -> None:
        sleeps.append(delay)
        if not started:
            started.append(FakeServer(port).start())

    try:
        c = InstitutionClient(f"http://127.0.0.1:{port}", KEY_ID, SECRET, sleep=sleep)
        result = c.verify("YB1:x", "02121", "op", "name", "dev", "biz")
        assert result.attempts == 2 and len(started[0].requests) == 1
    finally:
        if started:
            started[0].stop()


def test_retries_run_out(server, sleeps):
    server.default = problem(503, "DATABASE_UNAVAILABLE")
    with pytest.raises(errors.ServiceUnavailable) as info:
        client(server, sleeps, max_retries=2).me()
    assert info.value.attempts == 3 and len(server.requests) == 3 and len(sleeps) == 2


def test_key_in_use_retries_run_out(server, sleeps):
    server.default = problem(409, "IDEMPOTENCY_KEY_IN_USE")
    with pytest.raises(errors.IdempotencyKeyInUse):
        client(server, sleeps).pay("po_1")
    assert len(server.requests) == 4
    assert len({s.headers["idempotency-key"] for s in server.requests}) == 1


def test_network_retries_run_out(server, sleeps):
    server.default = Reset()
    with pytest.raises(errors.ConnectionFailed) as info:
        client(server, sleeps).get_order("po_1")
    assert info.value.attempts == 4 and len(server.requests) == 4


def test_retry_after_is_honoured_and_capped(server, sleeps):
    server.then(Reply(503, problem(503, "DATABASE_UNAVAILABLE").body, headers={"Retry-After": "2"}))
    server.then(Reply(503, problem(503, "DATABASE_UNAVAILABLE").body, headers={"Retry-After": "3600"}))
    client(server, sleeps, max_backoff=5.0).me()
    assert 2 <= sleeps[0] < 5.0 and sleeps[1] == 5.0


def test_a_503_page_of_a_proxy_is_retried(server, sleeps):
    server.then(Reply(503, b"<html>upstream unavailable</html>"), Reply(200, {"org_id": "org_1"}))
    assert client(server, sleeps).me().attempts == 2


def test_redirects_are_not_followed(server, sleeps):
    server.then(Reply(302, b"", headers={"Location": "/elsewhere"}))
    with pytest.raises(errors.NonProblemResponse) as info:
        client(server, sleeps).create_order(merchant_order_no="M", items=ITEMS, ec_token="ec_1")
    assert info.value.status == 302 and len(server.requests) == 1


def test_query_is_signed_as_sent(server, sleeps):
    client(server, sleeps).statement("2026-01-01")
    seen = server.requests[0]
    assert seen.target == "/api/v1/statements?date=2026-01-01"
    assert_signed(seen)


def test_iterate_follows_next_cursor(server, sleeps):
    server.then(
        Reply(200, {"items": [1, 2], "next_cursor": "c2"}),
        Reply(200, {"items": [3], "next_cursor": "c3"}),
        Reply(200, {"items": [], "next_cursor": None}),
    )
    assert list(client(server, sleeps).iterate("/things", {"limit": 2})) == [1, 2, 3]
    assert [s.target for s in server.requests] == [
        "/api/v1/things?limit=2",
        "/api/v1/things?limit=2&cursor=c2",
        "/api/v1/things?limit=2&cursor=c3",
    ]
    for s in server.requests:
        assert_signed(s)


def test_concurrent_calls_sign_independently(server, sleeps):
    c = client(server, sleeps)
    threads = [threading.Thread(target=c.me) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({s.headers["x-yb-nonce"] for s in server.requests}) == 8


def test_bad_arguments_are_refused_before_sending(server, sleeps):
    c = client(server, sleeps)
    with pytest.raises(ValueError):
        c.get_order("../admin/persons")
    with pytest.raises(ValueError):
        c.create_order(merchant_order_no="M", items=ITEMS)  # neither pay_auth_no nor ec_token
    with pytest.raises(ValueError):
        c.pay("po_1", idempotency_key="密钥")
    with pytest.raises(ValueError):
        InstitutionClient(server.url, "bad key id", SECRET)
    with pytest.raises(ValueError):
        InstitutionClient("ftp://example.org", KEY_ID, SECRET)
    assert server.requests == []
    assert SECRET not in repr(c)
