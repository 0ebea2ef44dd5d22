"""The lean floor of issue 12: a WSGI app that does only the irreducible work of a verification and of a
pay, served by `python -m bench floor` (bench/floor.py) with the service's own gunicorn command.

No yibao import on any request's path: the standard library, cryptography, redis-py and psycopg 3 only
(Flask for the /flask/ variant). Per request:

- GET /healthz: the service's answer, {"status": "ok"} (this server's bare endpoint); /flask/healthz
  the same from a minimal Flask view.
- POST /api/v1/verifications (raw WSGI) and POST /flask/api/v1/verifications (a minimal Flask view):
  the institution's HMAC-SHA256 request signature exactly as the service checks it (X-Yb-* headers,
  the canonical string of yibao_client.signing, ±300 s, constant-time compare; institutions held in
  memory, as the service's per-worker cache does), the JSON body, the Ed25519 signature of the
  compact YB1: code and its claims, one Redis round trip (a script: SET NX of the request's nonce and
  of the code's single-use key), one PostgreSQL transaction (INSERT of the durable single-use row,
  INSERT of the audit row, COMMIT), a JSON answer of the service's size.
- POST /api/v1/payment-orders/<id>/pay: the signature, SET NX of the nonce, one transaction that locks
  the order and the payer's account (SELECT ... FOR UPDATE), debits the account (balance >= 0 guard),
  marks the order paid, inserts the idempotency row and three ledger legs summing to zero, COMMIT.

- /one/api/v1/verifications and /one/api/v1/payment-orders/<id>/pay (raw WSGI): a design variant,
  not the service's: no Redis; the nonce (a PostgreSQL table), the single use and the audit row, or the
  whole pay, in one autocommitted statement (one round trip, one commit; CHECK balance_fen >= 0 and
  the unique keys abort it). What fewer round trips would buy.

Configuration: FLOOR_CONFIG, a JSON object (bench/floor.py writes it): dsn, redis_url, institutions
{key_id: {id, secret, services, account_id}}, keys {kid: public key hex}, cash_account_id. One psycopg
connection per worker thread (the gthread worker's threads), one redis-py pool per process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
import redis
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

WINDOW = 300  # seconds of clock skew the service accepts on X-Yb-Timestamp
NONCE_TTL = 900
LEEWAY = 5  # the service's clock leeway on a code's exp
MAX_TTL = 300
MAX_BODY = 64 * 1024
QR_PREFIX = "YB1:"
SIG_LEN = 64

_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_NONCE = re.compile(r"[!-~]{1,128}")
_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
_IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,255}")
_PAY_PATH = re.compile(r"/api/v1/payment-orders/(po_[A-Za-z0-9_-]{24})/pay")
# RFC 9285 alphabet; a byte outside it translates to 255
_B45_VALUES = bytes("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:".find(chr(i)) & 0xFF for i in range(256))

HEALTH = b'{"status":"ok"}\n'

# KEYS[1] the request's nonce, KEYS[2] (optional) the code's single-use key; ARGV their TTLs.
# 0: the nonce was used already (nothing else set), 1: the code was used already, 2: both fresh.
CLAIM_LUA = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
if #KEYS == 1 then return 2 end
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then return 1 end
return 2
"""
NONCE_REUSED, CODE_USED, FRESH = 0, 1, 2

SCHEMA = """
CREATE TABLE floor_institutions (id integer PRIMARY KEY, key_id text NOT NULL UNIQUE);
CREATE TABLE floor_accounts (id bigint PRIMARY KEY, balance_fen bigint NOT NULL CHECK (balance_fen >= 0));
CREATE TABLE floor_nonces (key text PRIMARY KEY, expires_at timestamptz NOT NULL);
CREATE TABLE floor_voucher_uses (
    sub text NOT NULL, jti text NOT NULL, expires_at timestamptz NOT NULL, used_at timestamptz NOT NULL,
    PRIMARY KEY (sub, jti));
CREATE TABLE floor_voucher_usage (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    institution_id integer NOT NULL REFERENCES floor_institutions, business_type text NOT NULL,
    operator_id text NOT NULL, operator_name text NOT NULL, device_id text NOT NULL,
    out_biz_no text NOT NULL, sub text, jti text, result text NOT NULL, code text, ec_token text,
    created_at timestamptz NOT NULL);
CREATE TABLE floor_orders (
    id bigint PRIMARY KEY, pay_order_id text NOT NULL UNIQUE,
    institution_id integer NOT NULL REFERENCES floor_institutions,
    payer_account_id bigint NOT NULL REFERENCES floor_accounts, status text NOT NULL,
    total_fen bigint NOT NULL, drug_fen bigint NOT NULL, delivery_fee_fen bigint NOT NULL,
    account_pay_fen bigint NOT NULL, cash_pay_fen bigint NOT NULL,
    created_at timestamptz NOT NULL, paid_at timestamptz);
CREATE TABLE floor_idempotency (
    institution_id integer NOT NULL REFERENCES floor_institutions, key text NOT NULL,
    order_id bigint NOT NULL REFERENCES floor_orders, status integer NOT NULL, response text NOT NULL,
    created_at timestamptz NOT NULL, PRIMARY KEY (institution_id, key));
CREATE TABLE floor_ledger_entries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, order_id bigint NOT NULL REFERENCES floor_orders,
    account_id bigint NOT NULL REFERENCES floor_accounts, amount_fen bigint NOT NULL,
    created_at timestamptz NOT NULL);
"""

INSERT_USE = (
    "INSERT INTO floor_voucher_uses (sub, jti, expires_at, used_at) VALUES (%s, %s, to_timestamp(%s), now())"
    " ON CONFLICT DO NOTHING RETURNING 1"
)
INSERT_USAGE = (
    "INSERT INTO floor_voucher_usage (institution_id, business_type, operator_id, operator_name, device_id,"
    " out_biz_no, sub, jti, result, code, ec_token, created_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())"
)
LOCK_ORDER = (
    "SELECT o.id, o.status, o.payer_account_id, o.total_fen, o.drug_fen, o.delivery_fee_fen,"
    " o.account_pay_fen, o.cash_pay_fen, o.created_at FROM floor_orders o"
    " JOIN floor_accounts a ON a.id = o.payer_account_id"
    " WHERE o.pay_order_id = %s AND o.institution_id = %s FOR UPDATE"
)
DEBIT = "UPDATE floor_accounts SET balance_fen = balance_fen - %s WHERE id = %s AND balance_fen >= %s"
MARK_PAID = "UPDATE floor_orders SET status = 'paid', paid_at = now() WHERE id = %s RETURNING paid_at"
INSERT_IDEMPOTENCY = (
    "INSERT INTO floor_idempotency (institution_id, key, order_id, status, response, created_at)"
    " VALUES (%s, %s, %s, 200, %s, now()) ON CONFLICT DO NOTHING RETURNING 1"
)
INSERT_LEGS = (
    "INSERT INTO floor_ledger_entries (order_id, account_id, amount_fen, created_at)"
    " VALUES (%s, %s, %s, now()), (%s, %s, %s, now()), (%s, %s, %s, now())"
)

# The one-statement variant (/one/...): no Redis; the nonce, the single use and the audit row (or the
# whole pay) in one autocommitted statement: one round trip, one commit. A design sketch, not the service's.
ONE_VERIFY = """
WITH n AS (
    INSERT INTO floor_nonces (key, expires_at) VALUES (%(nonce)s, now() + interval '900 seconds')
    ON CONFLICT DO NOTHING RETURNING 1),
u AS (
    INSERT INTO floor_voucher_uses (sub, jti, expires_at, used_at)
    SELECT %(sub)s::text, %(jti)s::text, to_timestamp(%(exp)s), now()
    WHERE %(sub)s::text IS NOT NULL AND EXISTS (SELECT FROM n)
    ON CONFLICT DO NOTHING RETURNING 1),
v AS (SELECT EXISTS (SELECT FROM u) AS ok)
INSERT INTO floor_voucher_usage (institution_id, business_type, operator_id, operator_name, device_id,
    out_biz_no, sub, jti, result, code, ec_token, created_at)
SELECT %(inst)s, %(business_type)s, %(operator_id)s, %(operator_name)s, %(device_id)s, %(out_biz_no)s,
    %(sub)s, %(jti)s, CASE WHEN v.ok THEN 'accepted' ELSE 'refused' END,
    CASE WHEN v.ok THEN NULL ELSE coalesce(%(code)s::text, 'VOUCHER_ALREADY_USED') END,
    CASE WHEN v.ok THEN %(ec)s::text END, now()
FROM v WHERE EXISTS (SELECT FROM n)
RETURNING result
"""
ONE_PAY = """
WITH n AS (
    INSERT INTO floor_nonces (key, expires_at) VALUES (%(nonce)s, now() + interval '900 seconds')
    ON CONFLICT DO NOTHING RETURNING 1),
o AS (
    UPDATE floor_orders SET status = 'paid', paid_at = now()
    WHERE pay_order_id = %(po)s AND institution_id = %(inst)s AND status = 'created'
        AND total_fen = account_pay_fen + cash_pay_fen AND EXISTS (SELECT FROM n)
    RETURNING id, payer_account_id, total_fen, drug_fen, delivery_fee_fen, account_pay_fen, cash_pay_fen,
        created_at, paid_at),
a AS (
    UPDATE floor_accounts SET balance_fen = balance_fen - o.account_pay_fen FROM o
    WHERE floor_accounts.id = o.payer_account_id RETURNING 1),
r AS (
    SELECT o.id, json_build_object('pay_order_id', %(po)s::text, 'merchant_order_no', %(po)s::text,
        'status', 'paid', 'purpose', 'online_otc', 'account_only', false, 'drug_fen', o.drug_fen,
        'delivery_fee_fen', o.delivery_fee_fen, 'total_fen', o.total_fen,
        'account_pay_fen', o.account_pay_fen, 'cash_pay_fen', o.cash_pay_fen, 'mutual_aid_pay_fen', 0,
        'refunded_fen', 0, 'created_at', o.created_at, 'paid_at', o.paid_at,
        'warnings', json_build_array())::text AS body
    FROM o),
i AS (
    INSERT INTO floor_idempotency (institution_id, key, order_id, status, response, created_at)
    SELECT %(inst)s, %(key)s, r.id, 200, r.body, now() FROM r),
l AS (
    INSERT INTO floor_ledger_entries (order_id, account_id, amount_fen, created_at)
    SELECT o.id, x.account, x.amount, now() FROM o CROSS JOIN LATERAL (VALUES
        (o.payer_account_id, -o.account_pay_fen), (%(cash)s::bigint, -o.cash_pay_fen),
        (%(inst_account)s::bigint, o.total_fen)) AS x(account, amount))
SELECT EXISTS (SELECT FROM n), (SELECT body FROM r), (SELECT count(*) FROM a)
"""
ORDER_STATUS = "SELECT status FROM floor_orders WHERE pay_order_id = %s AND institution_id = %s"


class Refused(Exception):  # noqa: N818 - an answer, not a failure
    """A refusal: the HTTP status and the service's problem code."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Institution:
    id: int
    key_id: str
    secret: bytes
    services: frozenset[str]
    account_id: int


# ---------------------------------------------------------------- the pure checks


def checked_signature(
    institutions: dict[str, Institution],
    headers: tuple[Any, Any, Any, Any],
    method: str,
    path: str,
    query: str,
    body: bytes,
    now: float | None = None,
) -> tuple[Institution, str]:
    """(institution, nonce key) of a correctly signed request; `headers` are the values of X-Yb-Key,
    -Timestamp, -Nonce and -Signature. Shapes, window, key, HMAC in constant time: the service's
    yibao.auth.institutions.signed_request and SignedRequest.signed_with, restated without their
    imports (the shape check is the same lines)."""
    key_id, timestamp, nonce, signature = headers
    if not (
        isinstance(key_id, str)
        and isinstance(timestamp, str)
        and isinstance(nonce, str)
        and isinstance(signature, str)
        and _KEY_ID.fullmatch(key_id)
        and _TIMESTAMP.fullmatch(timestamp)
        and _NONCE.fullmatch(nonce)
        and _SIGNATURE.fullmatch(signature)
    ):
        raise Refused(401, "INSTITUTION_AUTH_FAILED")
    if abs((time.time() if now is None else now) - int(timestamp)) > WINDOW:
        raise Refused(401, "INSTITUTION_AUTH_FAILED")
    inst = institutions.get(key_id)
    target = f"{path}?{query}" if query else path
    canonical = "\n".join([method.upper(), target, timestamp, nonce, hashlib.sha256(body).hexdigest()])
    expected = hmac.new(inst.secret if inst else b"x" * 43, canonical.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()) or inst is None:
        raise Refused(401, "INSTITUTION_AUTH_FAILED")
    return inst, f"fl:nonce:{{{key_id}}}:{nonce}"


def _b45decode(text: str) -> bytes:
    try:
        values = text.encode("ascii").translate(_B45_VALUES)
    except UnicodeEncodeError as exc:
        raise Refused(400, "VOUCHER_MALFORMED") from exc
    if 255 in values or len(values) % 3 == 1:
        raise Refused(400, "VOUCHER_MALFORMED")
    full = len(values) - len(values) % 3
    triples = zip(values[0:full:3], values[1:full:3], values[2:full:3], strict=True)
    try:
        out = struct.pack(f">{full // 3}H", *(a + 45 * b + 2025 * c for a, b, c in triples))
        if full < len(values):
            out += bytes((values[full] + 45 * values[full + 1],))
    except (struct.error, ValueError) as exc:
        raise Refused(400, "VOUCHER_MALFORMED") from exc
    return out


def _b64u(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise Refused(400, "VOUCHER_MALFORMED") from exc
    if not isinstance(obj, dict):
        raise Refused(400, "VOUCHER_MALFORMED")
    return obj


def checked_code(keys: dict[str, Any], content: Any, now: float | None = None) -> tuple[str, str, int]:
    """(sub, jti, exp) of a YB1: code whose Ed25519 signature and claims hold (`keys`: kid -> public)."""
    if not isinstance(content, str) or not content.startswith(QR_PREFIX) or len(content) > 4096:
        raise Refused(400, "VOUCHER_MALFORMED")
    blob = _b45decode(content[len(QR_PREFIX) :])
    hlen = blob[0] if blob else 0
    if hlen < 2 or 1 + hlen + 2 + SIG_LEN > len(blob):
        raise Refused(400, "VOUCHER_MALFORMED")
    header_raw, payload_raw, sig = blob[1 : 1 + hlen], blob[1 + hlen : -SIG_LEN], blob[-SIG_LEN:]
    header = _json_object(header_raw)
    key = keys.get(header.get("kid"))
    if header.get("alg") != "EdDSA" or key is None:
        raise Refused(422, "VOUCHER_SIGNATURE_INVALID")
    try:
        key.verify(sig, _b64u(header_raw) + b"." + _b64u(payload_raw))
    except InvalidSignature as exc:
        raise Refused(422, "VOUCHER_SIGNATURE_INVALID") from exc
    claims = _json_object(payload_raw)
    sub, jti, iat, exp = (claims.get(k) for k in ("sub", "jti", "iat", "exp"))
    if header.get("typ") != "vc+jwt" or claims.get("iss") != "yb" or claims.get("aud") != "ec":
        raise Refused(422, "VOUCHER_SIGNATURE_INVALID")
    if not (isinstance(sub, str) and isinstance(jti, str) and type(iat) is int and type(exp) is int):
        raise Refused(400, "VOUCHER_MALFORMED")
    now = time.time() if now is None else now
    if iat > now + LEEWAY or exp - iat > MAX_TTL:
        raise Refused(422, "VOUCHER_SIGNATURE_INVALID")
    if exp + LEEWAY < now:
        raise Refused(422, "VOUCHER_EXPIRED")
    return sub, jti, exp


def pay_legs(
    *, payer_account: int, institution_account: int, cash_account: int, order: dict[str, int]
) -> list[tuple[int, int]]:
    """The ledger legs of a pay, (account, amount): the personal account and the cash clearing account
    pay the institution the order's total. Raises ValueError unless they sum to zero."""
    legs = [
        (payer_account, -order["account_pay_fen"]),
        (cash_account, -order["cash_pay_fen"]),
        (institution_account, order["total_fen"]),
    ]
    if sum(amount for _, amount in legs):
        raise ValueError("unbalanced pay legs")
    return legs


# ---------------------------------------------------------------- the app


_SCAN_FIELDS = ("qr_content", "business_type", "operator_id", "operator_name", "device_id", "out_biz_no")


class FloorApp:
    """The raw WSGI app (and its Flask twin under /flask/)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.dsn = config["dsn"]
        self.institutions = {
            key_id: Institution(
                i["id"], key_id, i["secret"].encode(), frozenset(i["services"]), i["account_id"]
            )
            for key_id, i in config["institutions"].items()
        }
        self.keys = {
            kid: Ed25519PublicKey.from_public_bytes(bytes.fromhex(x)) for kid, x in config["keys"].items()
        }
        self.cash_account = config["cash_account_id"]
        self.redis = redis.Redis.from_url(config["redis_url"])
        self._claim = self.redis.register_script(CLAIM_LUA)
        self._local = threading.local()
        self.flask = flask_twin(self)

    # -------------------------------------------------------- storage

    def _cursor(self) -> Any:
        """This thread's cursor on its own connection (opened on first use)."""
        cur = getattr(self._local, "cur", None)
        if cur is None or cur.connection.closed:
            cur = self._local.cur = psycopg.connect(self.dsn, autocommit=True).cursor()
        return cur

    def _transaction(self, work: Callable[[Any], Any]) -> Any:
        """work(cursor) in one transaction (BEGIN, its statements, COMMIT); rolled back when it raises."""
        cur = self._cursor()
        with cur.connection.transaction():
            return work(cur)

    # -------------------------------------------------------- the two requests

    def _scan(self, headers: tuple, method: str, path: str, query: str, body: bytes) -> tuple:
        """The checks of a scan needing no storage: (institution, nonce key, scan, sub, jti, exp, refusal)."""
        inst, nonce_key = checked_signature(self.institutions, headers, method, path, query, body)
        try:
            scan = json.loads(body)
        except ValueError as exc:
            raise Refused(400, "VALIDATION_FAILED") from exc
        if not isinstance(scan, dict) or not all(isinstance(scan.get(k), str) for k in _SCAN_FIELDS):
            raise Refused(400, "VALIDATION_FAILED")
        if scan["business_type"] not in inst.services:
            raise Refused(403, "INSTITUTION_NOT_DESIGNATED")
        try:
            return (inst, nonce_key, scan, *checked_code(self.keys, scan["qr_content"]), None)
        except Refused as refusal:
            return inst, nonce_key, scan, None, None, 0, refusal

    def verification(
        self, headers: tuple, method: str, path: str, query: str, body: bytes
    ) -> tuple[int, Any]:
        """The service's design: Redis takes the nonce and the code, PostgreSQL the durable row and the
        audit row in one transaction."""
        inst, nonce_key, scan, sub, jti, exp, code = self._scan(headers, method, path, query, body)
        if code is None:
            ttl = max(1, math.ceil(exp + LEEWAY - time.time()))
            outcome = self._claim(keys=[nonce_key, f"fl:vuse:{{{sub}}}:{jti}"], args=[NONCE_TTL, ttl])
        else:
            outcome = self._claim(keys=[nonce_key], args=[NONCE_TTL])
        if outcome == NONCE_REUSED:
            raise Refused(401, "INSTITUTION_AUTH_FAILED")
        if outcome == CODE_USED:
            code = Refused(409, "VOUCHER_ALREADY_USED")

        def write(cur: Any) -> str | None:
            nonlocal code
            if code is None and cur.execute(INSERT_USE, (sub, jti, exp + LEEWAY)).fetchone() is None:
                code = Refused(409, "VOUCHER_ALREADY_USED")  # Redis forgot; the database did not
            ec = None if code is not None else "ec_" + secrets.token_urlsafe(27)
            values = [inst.id, *(scan[k] for k in _SCAN_FIELDS[1:]), sub, jti]
            cur.execute(INSERT_USAGE, (*values, "refused" if code else "accepted", code and code.code, ec))
            return ec

        ec = self._transaction(write)
        if code is not None:
            raise code
        return 200, _scan_answer(ec, scan["business_type"], sub)

    def verification_one(
        self, headers: tuple, method: str, path: str, query: str, body: bytes
    ) -> tuple[int, Any]:
        """The one-statement variant: no Redis; nonce, single use and audit row in one statement."""
        inst, nonce_key, scan, sub, jti, exp, code = self._scan(headers, method, path, query, body)
        ec = "ec_" + secrets.token_urlsafe(27)
        params = {k: scan[k] for k in _SCAN_FIELDS[1:]}
        params.update(nonce=nonce_key, sub=sub, jti=jti, exp=exp + LEEWAY, inst=inst.id, ec=ec)
        params["code"] = code and code.code
        row = self._cursor().execute(ONE_VERIFY, params).fetchone()
        if row is None:
            raise Refused(401, "INSTITUTION_AUTH_FAILED")
        if code is not None:
            raise code
        if row[0] != "accepted":
            raise Refused(409, "VOUCHER_ALREADY_USED")
        return 200, _scan_answer(ec, scan["business_type"], sub)

    def pay(self, headers: tuple, path: str, query: str, pay_order_id: str, idem_key: Any) -> tuple[int, Any]:
        inst, nonce_key = checked_signature(self.institutions, headers, "POST", path, query, b"")
        if not isinstance(idem_key, str) or not _IDEMPOTENCY_KEY.fullmatch(idem_key):
            raise Refused(400, "IDEMPOTENCY_KEY_REQUIRED")
        if not self.redis.set(nonce_key, b"1", nx=True, ex=NONCE_TTL):
            raise Refused(401, "INSTITUTION_AUTH_FAILED")

        def write(cur: Any) -> dict[str, Any]:
            row = cur.execute(LOCK_ORDER, (pay_order_id, inst.id)).fetchone()
            if row is None:
                raise Refused(404, "ORDER_NOT_FOUND")
            order_id, status, payer, total, drug, delivery, account_pay, cash_pay, created = row
            if status != "created":
                raise Refused(409, "ORDER_STATE_CONFLICT")
            amounts = {"total_fen": total, "account_pay_fen": account_pay, "cash_pay_fen": cash_pay}
            legs = pay_legs(
                payer_account=payer,
                institution_account=inst.account_id,
                cash_account=self.cash_account,
                order=amounts,
            )
            if cur.execute(DEBIT, (account_pay, payer, account_pay)).rowcount != 1:
                raise Refused(409, "INSUFFICIENT_BALANCE")
            (paid_at,) = cur.execute(MARK_PAID, (order_id,)).fetchone()
            answer = {
                "pay_order_id": pay_order_id,
                "merchant_order_no": pay_order_id,
                "status": "paid",
                "purpose": "online_otc",
                "account_only": False,
                "drug_fen": drug,
                "delivery_fee_fen": delivery,
                **amounts,
                "mutual_aid_pay_fen": 0,
                "refunded_fen": 0,
                "created_at": created.isoformat(),
                "paid_at": paid_at.isoformat(),
                "warnings": [],
            }
            stored = json.dumps(answer)
            if cur.execute(INSERT_IDEMPOTENCY, (inst.id, idem_key, order_id, stored)).fetchone() is None:
                raise Refused(409, "IDEMPOTENCY_KEY_IN_USE")
            cur.execute(INSERT_LEGS, [x for account, amount in legs for x in (order_id, account, amount)])
            return answer

        return 200, self._transaction(write)

    def pay_one(
        self, headers: tuple, path: str, query: str, pay_order_id: str, idem_key: Any
    ) -> tuple[int, Any]:
        """The one-statement variant of pay: no Redis; the answer is built by PostgreSQL (JSON text)."""
        inst, nonce_key = checked_signature(self.institutions, headers, "POST", path, query, b"")
        if not isinstance(idem_key, str) or not _IDEMPOTENCY_KEY.fullmatch(idem_key):
            raise Refused(400, "IDEMPOTENCY_KEY_REQUIRED")
        params = {
            "nonce": nonce_key,
            "po": pay_order_id,
            "inst": inst.id,
            "key": idem_key,
            "cash": self.cash_account,
            "inst_account": inst.account_id,
        }
        cur = self._cursor()
        try:
            fresh, body, _ = cur.execute(ONE_PAY, params).fetchone()
        except psycopg.errors.CheckViolation as exc:
            raise Refused(409, "INSUFFICIENT_BALANCE") from exc
        except psycopg.errors.UniqueViolation as exc:
            raise Refused(409, "IDEMPOTENCY_KEY_IN_USE") from exc
        if not fresh:
            raise Refused(401, "INSTITUTION_AUTH_FAILED")
        if body is None:
            found = cur.execute(ORDER_STATUS, (pay_order_id, inst.id)).fetchone()
            raise Refused(404, "ORDER_NOT_FOUND") if found is None else Refused(409, "ORDER_STATE_CONFLICT")
        return 200, _Raw(body.encode())

    # -------------------------------------------------------- WSGI

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
        if path == "/healthz" and method == "GET":
            return _send(start_response, 200, HEALTH)
        if path.startswith("/flask/"):
            return self.flask(environ, start_response)
        if method != "POST":
            return _send(start_response, 404, b'{"code":"NOT_FOUND"}')
        headers = tuple(environ.get(k) for k in _HEADER_KEYS)
        query = environ.get("QUERY_STRING", "")
        one = path.startswith("/one/")
        route = path[4:] if one else path
        try:
            if route == "/api/v1/verifications":
                length = int(environ.get("CONTENT_LENGTH") or 0)
                if length > MAX_BODY:
                    raise Refused(413, "PAYLOAD_TOO_LARGE")
                body = environ["wsgi.input"].read(length) if length else b""
                verify = self.verification_one if one else self.verification
                status, answer = verify(headers, method, path, query, body)
            elif m := _PAY_PATH.fullmatch(route):
                idem = environ.get("HTTP_IDEMPOTENCY_KEY")
                status, answer = (self.pay_one if one else self.pay)(headers, path, query, m.group(1), idem)
            else:
                return _send(start_response, 404, b'{"code":"NOT_FOUND"}')
        except Refused as refusal:
            return _send(start_response, refusal.status, problem(refusal))
        data = answer.data if isinstance(answer, _Raw) else json.dumps(answer).encode()
        return _send(start_response, status, data)


@dataclass(frozen=True)
class _Raw:
    """An answer already encoded (the one-statement pay's, built by PostgreSQL)."""

    data: bytes


def _scan_answer(ec: str | None, business_type: str, sub: str) -> dict[str, Any]:
    """The service's answer to an accepted scan, of its size (the person as a real read would give)."""
    return {
        "ec_token": ec,
        "expires_in": 1800,
        "business_type": business_type,
        "person": {
            "psn_no": f"psn_{sub}{sub}",
            "name_masked": "赵*",
            "id_number_masked": "5329**********0012",
            "insurance_type": "employee",
            "insured_region": "532900",
            "has_personal_account": True,
        },
        "warnings": [],
    }


_HEADER_KEYS = ("HTTP_X_YB_KEY", "HTTP_X_YB_TIMESTAMP", "HTTP_X_YB_NONCE", "HTTP_X_YB_SIGNATURE")
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}


def problem(refusal: Refused) -> bytes:
    return json.dumps({"status": refusal.status, "code": refusal.code, "title": refusal.code}).encode()


def _send(start_response: Callable, status: int, data: bytes) -> list[bytes]:
    start_response(
        f"{status} {_REASONS.get(status, 'Refused')}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]


def flask_twin(floor: FloorApp) -> Any:
    """The verification as a minimal Flask view (and Flask's /healthz): the framework's own cost."""
    from flask import Flask, request

    app = Flask("bench.floor_app")

    @app.get("/flask/healthz")
    def healthz() -> Any:
        return {"status": "ok"}

    @app.post("/flask/api/v1/verifications")
    def verify() -> Any:
        h = request.headers
        headers = (h.get("X-Yb-Key"), h.get("X-Yb-Timestamp"), h.get("X-Yb-Nonce"), h.get("X-Yb-Signature"))
        query = request.query_string.decode("latin-1")
        try:
            status, answer = floor.verification(
                headers, request.method, request.path, query, request.get_data()
            )
        except Refused as refusal:
            return problem(refusal), refusal.status, {"Content-Type": "application/json"}
        return answer, status

    return app


def _from_environment() -> Any:
    config = os.environ.get("FLOOR_CONFIG")
    return FloorApp(json.loads(config)) if config else None


app = _from_environment()
