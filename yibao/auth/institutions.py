"""HMAC request signing of institutions (X-Yb-Key / -Timestamp / -Nonce / -Signature)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from yibao.db import UnitOfWork
from yibao.errors import AppError
from yibao.redis_store import guard
from yibao.registry import services as registry

log = logging.getLogger(__name__)

# Why a signed request was refused: the problem's `reason` and the log line's (with the key id, never
# the secret or the expected signature). Key ids are random (ak_ + 16 characters), so telling an unknown
# key from a wrong signature helps an integrator and gives an attacker nothing to enumerate.
REASONS = (
    "HEADERS_MISSING",  # a header absent or not of its shape
    "TIMESTAMP_SKEW",  # X-Yb-Timestamp more than the window away from the server's clock
    "KEY_UNKNOWN",  # no institution has this key id (never issued, or rotated out)
    "SIGNATURE_MISMATCH",  # the HMAC is not the one of the canonical string with this key's secret
    "KEY_DISABLED",  # a correct signature of a disabled institution (403 INSTITUTION_DISABLED)
    "NONCE_REUSED",  # a correct signature whose nonce was already used within NONCE_TTL
)

_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
NONCE_TTL = 900  # longer than the ±300 s window, so a nonce cannot be replayed while its timestamp is valid
MAX_NONCE_LEN = 128
_NONCE = re.compile(rf"[!-~]{{1,{MAX_NONCE_LEN}}}")  # visible ASCII


@dataclass(frozen=True)
class CurrentInstitution:
    id: int
    org_id: str
    kind: str
    region: str
    services: tuple[str, ...]
    name: str = ""

    def designated_for(self, service: str) -> bool:
        return service in self.services


def string_to_sign(method: str, path: str, query: str, timestamp: str, nonce: str, body: bytes) -> str:
    """METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nSHA256_HEX(BODY); '?' only when there is a query."""
    target = f"{path}?{query}" if query else path
    return "\n".join([method.upper(), target, timestamp, nonce, hashlib.sha256(body).hexdigest()])


def sign(
    secret: bytes | str, method: str, path: str, query: str, timestamp: str, nonce: str, body: bytes
) -> str:
    """The hex HMAC-SHA256 signature a client sends."""
    key = secret.encode() if isinstance(secret, str) else secret
    msg = string_to_sign(method, path, query, timestamp, nonce, body).encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SignedRequest:
    """The X-Yb-* headers of a request, their shapes checked, and what the signature covers."""

    key_id: str
    timestamp: str
    nonce: str
    signature: str  # lower-case hex
    method: str
    path: str
    query: str
    body: bytes

    def signed_with(self, secret: bytes) -> bool:
        """Whether the signature is the HMAC of this request with `secret` (constant time)."""
        expected = sign(secret, self.method, self.path, self.query, self.timestamp, self.nonce, self.body)
        return hmac.compare_digest(expected, self.signature)

    @property
    def nonce_key(self) -> str:
        # The key id as hash tag: the institution's version key (institution_cache) shares its slot.
        return f"yb:nonce:{{{self.key_id}}}:{self.nonce}"


def _fail(key_id: object, reason: str, code: str = "INSTITUTION_AUTH_FAILED", **extra: str) -> AppError:
    shown_key = key_id if isinstance(key_id, str) and _KEY_ID.fullmatch(key_id) else None
    log.warning("institution request refused", extra={"reason": reason, "key_id": shown_key})
    return AppError(code, reason=reason, **extra)


def nonce_reused(req: SignedRequest) -> AppError:
    return _fail(req.key_id, "NONCE_REUSED")


def signed_request(
    *,
    key_id: str | None,
    timestamp: str | None,
    nonce: str | None,
    signature: str | None,
    method: str,
    path: str,
    query: str,
    body: bytes,
    window: int = 300,
    now: float | None = None,
) -> SignedRequest:
    """The headers' shapes and the timestamp window. Raises INSTITUTION_AUTH_FAILED (HEADERS_MISSING,
    TIMESTAMP_SKEW)."""
    # Shapes first, in ASCII only: "²".isdigit() is True, and compare_digest refuses non-ASCII text.
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
        raise _fail(key_id, "HEADERS_MISSING")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > window:
        raise _fail(key_id, "TIMESTAMP_SKEW")
    return SignedRequest(key_id, timestamp, nonce, signature.lower(), method, path, query, body)


def checked_institution(inst: Any, req: SignedRequest, *, debug: bool = False) -> CurrentInstitution:
    """The institution row `inst` (None: unknown key) against the request, in the order of REASONS.

    Raises: INSTITUTION_AUTH_FAILED (KEY_UNKNOWN, SIGNATURE_MISMATCH; with `debug` — development only —
    the `string_to_sign` the server computed), INSTITUTION_DISABLED (KEY_DISABLED).
    """
    if inst is None:
        # Spend comparable work so a missing key is not told apart by timing.
        req.signed_with(b"x" * 43)
        raise _fail(req.key_id, "KEY_UNKNOWN")
    if not req.signed_with(registry.institution_secret(inst)):
        if debug:
            signed = string_to_sign(req.method, req.path, req.query, req.timestamp, req.nonce, req.body)
            raise _fail(req.key_id, "SIGNATURE_MISMATCH", string_to_sign=signed)
        raise _fail(req.key_id, "SIGNATURE_MISMATCH")
    if inst.status != "active":
        raise _fail(req.key_id, "KEY_DISABLED", "INSTITUTION_DISABLED")
    return current_of(inst)


def current_of(inst: Any) -> CurrentInstitution:
    return CurrentInstitution(
        inst.id, inst.org_id, inst.kind, inst.region, tuple(inst.services or ()), inst.name
    )


def authenticate(
    uow: UnitOfWork, redis_client: Any, *, debug: bool = False, **signed: Any
) -> CurrentInstitution:
    """Check key, timestamp window, signature (constant time) and then burn the nonce, reading the
    institution from the database (the cached path of signed calls is yibao.auth.institution_cache).
    `signed`: the arguments of `signed_request` (headers, method, path, query, body, window, now).

    Raises: INSTITUTION_AUTH_FAILED (401) with `reason` one of REASONS (and, when `debug` — development
    only — the `string_to_sign` the server computed, on SIGNATURE_MISMATCH); INSTITUTION_DISABLED (403,
    reason KEY_DISABLED); REPLAY_STORE_UNAVAILABLE (503) when Redis is down.
    """
    req = signed_request(**signed)
    current = checked_institution(registry.institution_by_key_id(uow, req.key_id), req, debug=debug)
    # Only a correctly signed request may burn a nonce, so nobody can pre-spend another's nonces.
    with guard():
        fresh = redis_client.set(req.nonce_key, "1", nx=True, ex=NONCE_TTL)
    if not fresh:
        raise nonce_reused(req)
    return current
