"""Institution request signing (the X-Yb-* headers of API contract v1).

Every institution request carries four headers::

    X-Yb-Key:       the key id
    X-Yb-Timestamp: unix seconds (the server accepts +-300 s)
    X-Yb-Nonce:     unique per request (1-128 visible ASCII characters; here 24 hex digits)
    X-Yb-Signature: hex(HMAC-SHA256(secret,
                        METHOD \\n PATH[?QUERY] \\n TIMESTAMP \\n NONCE \\n SHA256_HEX(BODY)))

`?QUERY` is present only when the URL has a query string, and it is the query exactly as sent on the
wire (not decoded, not re-ordered). BODY is the exact bytes sent (empty for no body).
Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

__all__ = ["canonical_string", "signature", "sign", "new_nonce", "check_key_id"]

_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NONCE = re.compile(r"[!-~]{1,128}")  # visible ASCII, what the server accepts
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def check_key_id(key_id: str) -> str:
    """The key id itself; raises ValueError unless it is 1-64 characters of [A-Za-z0-9_-]."""
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise ValueError("key_id must be 1-64 characters of [A-Za-z0-9_-]")
    return key_id


def new_nonce() -> str:
    """A fresh nonce: 24 hex characters (96 bits) from the operating system's CSPRNG."""
    return secrets.token_hex(12)


def canonical_string(method: str, path_and_query: str, timestamp: int | str, nonce: str, body: bytes) -> str:
    """The text that is signed: METHOD, PATH[?QUERY], TIMESTAMP, NONCE and SHA256_HEX(BODY), joined by \\n.

    `path_and_query` is the request target as sent (`/api/v1/statements?date=2026-01-01`); a trailing
    `?` with nothing after it is dropped, as the server sees no query then.
    Raises ValueError for a target that does not start with '/', or a bad nonce or timestamp.
    """
    if not path_and_query.startswith("/"):
        raise ValueError("path_and_query must start with '/'")
    if path_and_query.endswith("?"):
        path_and_query = path_and_query[:-1]
    ts = str(timestamp)
    if not _TIMESTAMP.fullmatch(ts):
        raise ValueError("timestamp must be unix seconds (1-12 digits)")
    if not _NONCE.fullmatch(nonce):
        raise ValueError("nonce must be 1-128 visible ASCII characters")
    return "\n".join([method.upper(), path_and_query, ts, nonce, hashlib.sha256(body).hexdigest()])


def signature(secret: str | bytes, canonical: str) -> str:
    """hex(HMAC-SHA256(secret, canonical)), the secret taken as its UTF-8 bytes."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, canonical.encode("utf-8"), hashlib.sha256).hexdigest()


def sign(
    secret: str | bytes,
    method: str,
    path_and_query: str,
    body: bytes = b"",
    *,
    key_id: str,
    timestamp: int | str | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four X-Yb-* headers for one request (a new timestamp and nonce unless given).

    Sign every attempt afresh: the server burns each nonce, so a retried request needs a new one.
    Raises ValueError for a malformed key id, nonce, timestamp or target.
    """
    check_key_id(key_id)
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = new_nonce() if nonce is None else nonce
    sig = signature(secret, canonical_string(method, path_and_query, ts, nonce, body))
    return {"X-Yb-Key": key_id, "X-Yb-Timestamp": ts, "X-Yb-Nonce": nonce, "X-Yb-Signature": sig}
