"""The lean floor app of `python -m bench floor` (bench/floor_app.py): it checks what the service checks
(a harness-signed request passes, a changed one does not; the code's Ed25519 signature and claims),
a pay's legs sum to zero, and, in-process on PostgreSQL + Redis, a code is accepted once only and a
pay commits its order, balance, idempotency row and ledger legs together."""

from __future__ import annotations

import io
import json
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bench import floor
from bench.floor_app import FloorApp, Refused, checked_code, checked_signature, pay_legs
from bench.floor_app import Institution as Inst
from bench.harness import signed_headers

KEY_ID, SECRET = "ak_" + "A" * 16, "s" * 43
INSTITUTIONS = {KEY_ID: Inst(1, KEY_ID, SECRET.encode(), frozenset({"02121"}), floor.INSTITUTION_ACCOUNT)}
PRIVATE = Ed25519PrivateKey.generate()
KEYS = {floor.KID: PRIVATE.public_key()}
VERIFY = "/api/v1/verifications"


def headers_of(h: dict[str, str]) -> tuple[Any, Any, Any, Any]:
    return (h.get("X-Yb-Key"), h.get("X-Yb-Timestamp"), h.get("X-Yb-Nonce"), h.get("X-Yb-Signature"))


def test_a_harness_signed_request_passes_and_its_nonce_key_is_the_institutions() -> None:
    body = b'{"qr_content":"x"}'
    h = signed_headers(KEY_ID, SECRET, "POST", VERIFY, body)
    inst, nonce_key = checked_signature(INSTITUTIONS, headers_of(h), "POST", VERIFY, "", body)
    assert inst.id == 1
    assert nonce_key == f"fl:nonce:{{{KEY_ID}}}:{h['X-Yb-Nonce']}"


@pytest.mark.parametrize("change", ["body", "path", "secret", "key", "timestamp", "shape", "missing"])
def test_a_request_not_signed_as_sent_is_refused(change: str) -> None:
    body, path = b'{"qr_content":"x"}', VERIFY
    secret = "t" * 43 if change == "secret" else SECRET
    key = "ak_" + "B" * 16 if change == "key" else KEY_ID
    ts = int(time.time()) - 301 if change == "timestamp" else None
    h = signed_headers(key, secret, "POST", path, body)
    if ts is not None:
        from yibao_client import signing

        h = signing.sign(secret, "POST", path, body, key_id=key, timestamp=ts)
    if change == "shape":
        h["X-Yb-Signature"] = h["X-Yb-Signature"][:-1]
    if change == "missing":
        del h["X-Yb-Nonce"]
    sent_body = b'{"qr_content":"y"}' if change == "body" else body
    sent_path = "/api/v1/verification" if change == "path" else path
    with pytest.raises(Refused) as exc:
        checked_signature(INSTITUTIONS, headers_of(h), "POST", sent_path, "", sent_body)
    assert (exc.value.status, exc.value.code) == (401, "INSTITUTION_AUTH_FAILED")


def test_a_code_of_the_service_shape_verifies_and_a_changed_one_does_not() -> None:
    (code,) = floor.make_codes(PRIVATE, ["x4yBMz5L"], 1)
    sub, jti, exp = checked_code(KEYS, code)
    assert sub == "x4yBMz5L" and len(jti) == 8 and exp > time.time()
    other = {floor.KID: Ed25519PrivateKey.generate().public_key()}
    with pytest.raises(Refused, match="VOUCHER_SIGNATURE_INVALID"):
        checked_code(other, code)
    flipped = code[:40] + ("0" if code[40] != "0" else "1") + code[41:]
    with pytest.raises(Refused, match="VOUCHER_(SIGNATURE_INVALID|MALFORMED)"):
        checked_code(KEYS, flipped)
    (old,) = floor.make_codes(PRIVATE, ["x4yBMz5L"], 1, now=int(time.time()) - 400)
    with pytest.raises(Refused, match="VOUCHER_EXPIRED"):
        checked_code(KEYS, old)
    with pytest.raises(Refused, match="VOUCHER_MALFORMED"):
        checked_code(KEYS, "YB1:abc")


def test_the_legs_of_a_pay_sum_to_zero() -> None:
    order = {"total_fen": 3190, "account_pay_fen": 2590, "cash_pay_fen": 600}
    legs = pay_legs(payer_account=7, institution_account=1, cash_account=2, order=order)
    assert sum(a for _, a in legs) == 0
    assert dict(legs) == {7: -2590, 2: -600, 1: 3190}
    with pytest.raises(ValueError, match="unbalanced"):
        pay_legs(payer_account=7, institution_account=1, cash_account=2, order={**order, "cash_pay_fen": 0})


# ---------------------------------------------------------------- in-process, PostgreSQL + Redis


@pytest.fixture
def floor_db() -> Iterator[str]:
    """A scratch schema of the test database (PostgreSQL only: the floor app is psycopg's)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("the floor app needs PostgreSQL (DATABASE_URL)")
    import psycopg

    base = url.replace("postgresql+psycopg://", "postgresql://")
    schema = "floor_" + secrets.token_hex(4)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def lean(floor_db: str, redis_url: str) -> Iterator[tuple[FloorApp, list[str]]]:
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    inst = {"key_id": KEY_ID, "secret": SECRET}
    orders = floor.prepare(floor_db, inst, orders=3, payers=2)
    public = PRIVATE.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    app = FloorApp(floor.app_config(floor_db, redis_url, inst, public))
    yield app, orders
    app._cursor().connection.close()
    app.redis.close()


def call(app: FloorApp, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple:
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": io.BytesIO(body)}
    setup_testing_defaults(environ)
    environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    answer: list = []
    data = b"".join(app(environ, lambda status, hs, *_: answer.append(int(status.split()[0]))))
    return answer[0], json.loads(data)


def scan(app: FloorApp, code: str | None, prefix: str = "", nonce: str | None = None) -> tuple:
    path = prefix + VERIFY
    body = json.dumps(
        {
            "qr_content": code,
            "business_type": "02121",
            "operator_id": "op-1",
            "operator_name": "bench",
            "device_id": "dev-1",
            "out_biz_no": "b-1",
        }
    ).encode()
    from yibao_client import signing

    h = signing.sign(SECRET, "POST", path, body, key_id=KEY_ID, nonce=nonce)
    return call(app, "POST", path, body, h)


def test_a_code_is_accepted_once_by_both_views_and_every_attempt_is_audited(lean: tuple) -> None:
    app, _ = lean
    assert call(app, "GET", "/healthz") == (200, {"status": "ok"})
    assert call(app, "GET", "/flask/healthz") == (200, {"status": "ok"})
    code, code2 = floor.make_codes(PRIVATE, ["x4yBMz5L"], 2)
    status, answer = scan(app, code)
    assert status == 200 and answer["ec_token"].startswith("ec_") and answer["business_type"] == "02121"
    assert scan(app, code)[1]["code"] == "VOUCHER_ALREADY_USED"  # Redis
    app.redis.flushdb()
    assert scan(app, code, "/flask")[1]["code"] == "VOUCHER_ALREADY_USED"  # the durable row
    assert scan(app, code2, "/flask")[0] == 200
    assert scan(app, code2, nonce="n-1")[0] == 409  # used: its nonce is burned all the same
    assert scan(app, code2, nonce="n-1") == (
        401,
        {"status": 401, "code": "INSTITUTION_AUTH_FAILED", "title": "INSTITUTION_AUTH_FAILED"},
    )  # a replay
    cur = app._cursor()
    rows = cur.execute("SELECT result, code FROM floor_voucher_usage ORDER BY id").fetchall()
    assert [r[0] for r in rows].count("accepted") == 2
    assert ("refused", "VOUCHER_ALREADY_USED") in rows


def test_a_pay_commits_order_balance_idempotency_and_balanced_legs(lean: tuple) -> None:
    app, orders = lean
    path = f"/api/v1/payment-orders/{orders[0]}/pay"

    def pay(key: str) -> tuple:
        h = signed_headers(KEY_ID, SECRET, "POST", path, b"")
        return call(app, "POST", path, b"", {**h, "Idempotency-Key": key})

    status, answer = pay("k-1")
    assert status == 200 and answer["status"] == "paid" and answer["account_pay_fen"] == 2590
    assert pay("k-2")[1]["code"] == "ORDER_STATE_CONFLICT"
    cur = app._cursor()
    legs = cur.execute("SELECT account_id, amount_fen FROM floor_ledger_entries").fetchall()
    (balance,) = cur.execute("SELECT balance_fen FROM floor_accounts WHERE id = 2").fetchone()
    (stored,) = cur.execute("SELECT response FROM floor_idempotency WHERE key = 'k-1'").fetchone()
    assert len(legs) == 3 and sum(a for _, a in legs) == 0
    assert balance == 10**12 - 2590  # order 1's payer: 1 + 1 % 2
    assert json.loads(stored) == answer


def test_the_one_statement_variant_accepts_a_code_once_and_audits_every_attempt(lean: tuple) -> None:
    app, _ = lean
    (code,) = floor.make_codes(PRIVATE, ["x4yBMz5L"], 1)
    assert scan(app, code, "/one")[0] == 200
    assert scan(app, code, "/one", nonce="n-2")[1]["code"] == "VOUCHER_ALREADY_USED"
    assert scan(app, code, "/one", nonce="n-2")[0] == 401  # the nonce, in PostgreSQL
    assert scan(app, "YB1:abc", "/one")[1]["code"] == "VOUCHER_MALFORMED"
    cur = app._cursor()
    rows = cur.execute(
        "SELECT result, code, ec_token IS NOT NULL FROM floor_voucher_usage ORDER BY id"
    ).fetchall()
    assert rows == [
        ("accepted", None, True),
        ("refused", "VOUCHER_ALREADY_USED", False),
        ("refused", "VOUCHER_MALFORMED", False),
    ]


def test_the_one_statement_pay_commits_the_same_rows(lean: tuple) -> None:
    app, orders = lean
    path = f"/one/api/v1/payment-orders/{orders[1]}/pay"

    def pay(key: str, nonce: str | None = None) -> tuple:
        from yibao_client import signing

        h = signing.sign(SECRET, "POST", path, b"", key_id=KEY_ID, nonce=nonce)
        return call(app, "POST", path, b"", {**h, "Idempotency-Key": key})

    status, answer = pay("k-1", nonce="n-3")
    assert status == 200 and answer["status"] == "paid" and answer["total_fen"] == 3190
    assert pay("k-2", nonce="n-3")[0] == 401
    assert pay("k-2")[1]["code"] == "ORDER_STATE_CONFLICT"
    cur = app._cursor()
    legs = cur.execute("SELECT account_id, amount_fen FROM floor_ledger_entries").fetchall()
    (balance,) = cur.execute("SELECT balance_fen FROM floor_accounts WHERE id = 1").fetchone()
    (stored,) = cur.execute("SELECT response FROM floor_idempotency WHERE key = 'k-1'").fetchone()
    assert sorted(a for _, a in legs) == [-2590, -600, 3190]
    assert balance == 10**12 - 2590  # order 2's payer: 1 + 2 % 2
    assert json.loads(stored) == answer
    cur.execute("UPDATE floor_accounts SET balance_fen = 0 WHERE id = 2")
    path = f"/one/api/v1/payment-orders/{orders[2]}/pay"
    assert pay("k-3")[1]["code"] == "INSUFFICIENT_BALANCE"  # the CHECK aborts the whole statement
    (status,) = cur.execute(
        "SELECT status FROM floor_orders WHERE pay_order_id = %s", (orders[2],)
    ).fetchone()
    assert status == "created"
