"""HMAC request signing of institutions (X-Yb-Key / -Timestamp / -Nonce / -Signature)."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass

from yibao.db import UnitOfWork
from yibao.errors import AppError
from yibao.redis_store import guard
from yibao.registry import services as registry

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


def authenticate(
    uow: UnitOfWork,
    redis_client: object,
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
) -> CurrentInstitution:
    """Check key, timestamp window, signature (constant time) and then burn the nonce."""
    fail = AppError("INSTITUTION_AUTH_FAILED")
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
        raise fail
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > window:
        raise fail
    inst = registry.institution_by_key_id(uow, key_id)
    if inst is None:
        # Spend comparable work so a missing key is not told apart by timing.
        hmac.compare_digest(sign(b"x" * 43, method, path, query, timestamp, nonce, body), signature)
        raise fail
    expected = sign(registry.institution_secret(inst), method, path, query, timestamp, nonce, body)
    if not hmac.compare_digest(expected, signature.lower()):
        raise fail
    if inst.status != "active":
        raise AppError("INSTITUTION_DISABLED")
    # Only a correctly signed request may burn a nonce, so nobody can pre-spend another's nonces.
    with guard():
        fresh = redis_client.set(f"yb:nonce:{{{inst.key_id}}}:{nonce}", "1", nx=True, ex=NONCE_TTL)
    if not fresh:
        raise fail
    return CurrentInstitution(inst.id, inst.org_id, inst.kind, inst.region, tuple(inst.services or ()))
