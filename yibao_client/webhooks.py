"""Webhook signatures (Standard Webhooks), for receivers of yibao's payment events.

yibao POSTs `{type, timestamp, data}` with the headers::

    webhook-id:        the event id (dedupe on it: delivery is at least once)
    webhook-timestamp: unix seconds
    webhook-signature: "v1,<base64 HMAC-SHA256(key, '{id}.{timestamp}.' + body)>" (several, space-separated,
                       during a secret rotation)

where `key` is the base64-decoded part of the endpoint secret after `whsec_`.
Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping

__all__ = ["sign", "verify", "headers"]

_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from exc


def _mac(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(_key(secret), signed, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """The webhook-signature header value `v1,<base64>` (for tests and for your own fake senders).

    Raises ValueError when the secret is not `whsec_` + base64.
    """
    return "v1," + base64.b64encode(_mac(secret, msg_id, timestamp, body)).decode()


def headers(secret: str, msg_id: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The three webhook-* headers yibao would send for this body (timestamp: now unless given)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> bool:
    """True when one of the `v1,` signatures matches and the timestamp is within `tolerance` seconds.

    `headers` may use any letter case (a dict, `http.client.HTTPMessage`, a framework's headers); `body`
    must be the raw bytes received, before any JSON parsing. Comparison is constant time. Never raises
    for bad input from the network (missing or malformed headers give False); raises ValueError only
    for a malformed secret, which is a configuration error.
    """
    key = _key(secret)  # configuration errors surface even when the request is garbage
    lower = {str(k).lower(): v for k, v in headers.items()}
    msg_id, ts, sigs = lower.get("webhook-id"), lower.get("webhook-timestamp"), lower.get("webhook-signature")
    if not (isinstance(msg_id, str) and isinstance(ts, str) and isinstance(sigs, str)):
        return False
    if not _TIMESTAMP.fullmatch(ts):
        return False
    now = time.time() if now is None else now
    if abs(now - int(ts)) > tolerance:
        return False
    try:
        signed = f"{msg_id}.{ts}.".encode()
    except UnicodeEncodeError:  # a lone surrogate: a non-UTF-8 byte handed over by surrogateescape
        return False
    expected = hmac.new(key, signed + body, hashlib.sha256).digest()
    ok = False
    for candidate in sigs.split():
        version, _, value = candidate.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        # No early exit: every candidate is compared.
        ok |= hmac.compare_digest(expected, given)
    return ok
