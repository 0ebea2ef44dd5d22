"""Merchant webhooks: an outbox written with the state change, and a worker that delivers it.

Signatures follow Standard Webhooks: headers webhook-id, webhook-timestamp and
webhook-signature = "v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>", the secret being the
base64 part of "whsec_...". Delivery state lives in the database, so a restarted worker loses nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from yibao import crypto
from yibao.db import UnitOfWork, uow_from, utcnow
from yibao.errors import AppError
from yibao.registry import services as registry

from .models import WebhookEndpoint, WebhookEvent

SECRET_PURPOSE = "webhook-secret"  # noqa: S105 (a key-derivation label, not a secret)
MAX_ATTEMPTS = 12
BASE_DELAY = 5.0  # seconds; attempt n waits about BASE_DELAY * 2**(n-1), capped
MAX_DELAY = 6 * 3600.0
TIMEOUT = 10.0
# A claimed batch is retried by another worker if this one dies: the lease covers sending the whole
# batch (every send may take TIMEOUT) plus a margin, so a slow but live worker is not overtaken.
LEASE_MARGIN = 30.0
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # ASCII digits only (not \d, not int())


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header value for one delivery."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(secret: str, headers: Mapping[str, object], body: bytes, tolerance: int = 300) -> bool:
    """What a receiver does: check the timestamp window and any v1 signature (constant time).

    Hostile headers give False, never an exception: the timestamp is 1 to 12 ASCII digits exactly
    (int() would also take "１２３", " 123", "+123" and "1_23"), and signatures are compared as bytes.
    """
    msg_id, ts, sigs = (headers.get(k) for k in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (isinstance(msg_id, str) and isinstance(ts, str) and isinstance(sigs, str)):
        return False
    if not _TIMESTAMP.fullmatch(ts) or abs(time.time() - int(ts)) > tolerance:
        return False
    try:
        expected = sign(secret, msg_id, int(ts), body).encode()
    except UnicodeEncodeError:  # a lone surrogate (a non-UTF-8 byte through surrogateescape)
        return False
    given = [s.encode() for s in sigs.split() if s.isascii()]
    return any([hmac.compare_digest(expected, s) for s in given])  # every candidate is compared


def backoff(attempts: int, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter in [0.5, 1.5) of the step."""
    step = min(BASE_DELAY * 2 ** max(attempts - 1, 0), MAX_DELAY)
    return step * (0.5 + rng())


@dataclass(frozen=True)
class EndpointInfo:
    url: str
    secret: str


def set_endpoint(uow: UnitOfWork, org_id: str, url: str | None) -> EndpointInfo:
    """Set the webhook URL of an institution (default: the registry's webhook_url) and a new secret.

    Raises: INSTITUTION_NOT_FOUND, VALIDATION_FAILED (no URL given or registered).
    """
    inst = registry.institution_by_org_id(uow, org_id)
    if inst is None:
        raise AppError("INSTITUTION_NOT_FOUND")
    url = url or inst.webhook_url
    if not url:
        raise AppError("VALIDATION_FAILED", errors={"url": ["No webhook URL given or registered."]})
    secret = new_secret()
    enc = crypto.encrypt(secret, purpose=SECRET_PURPOSE, aad=str(inst.id))
    ep = uow.session.get(WebhookEndpoint, inst.id)
    if ep is None:
        uow.session.add(WebhookEndpoint(institution_id=inst.id, url=url, secret_enc=enc))
    else:
        ep.url, ep.secret_enc = url, enc
    inst.webhook_url = url
    uow.session.flush()
    return EndpointInfo(url, secret)


def get_endpoint(uow: UnitOfWork, org_id: str) -> EndpointInfo:
    """The institution's webhook URL and secret (operators only).

    Raises: NOT_FOUND (no such institution, or no endpoint set).
    """
    inst = registry.institution_by_org_id(uow, org_id)
    ep = uow.session.get(WebhookEndpoint, inst.id) if inst else None
    if ep is None:
        raise AppError("NOT_FOUND")
    return EndpointInfo(ep.url, crypto.decrypt(ep.secret_enc, purpose=SECRET_PURPOSE, aad=str(inst.id)))


def enqueue(
    uow: UnitOfWork,
    *,
    institution_id: int,
    type: str,
    data: dict[str, Any],
    now: datetime,
    has_endpoint: bool | None = None,
) -> None:
    """Write an outbox event in the caller's transaction (nothing if the institution has no endpoint).

    `has_endpoint` lets a caller that already read it in the same transaction spare the lookup.
    """
    if has_endpoint is None:
        has_endpoint = uow.session.get(WebhookEndpoint, institution_id) is not None
    if not has_endpoint:
        return
    event_id = "msg_" + secrets.token_urlsafe(18)
    payload = json.dumps(
        {"type": type, "timestamp": now.isoformat().replace("+00:00", "Z"), "data": data},
        ensure_ascii=False,
        separators=(",", ":"),
        default=_iso,
    )
    uow.session.add(
        WebhookEvent(
            event_id=event_id,
            institution_id=institution_id,
            type=type,
            payload=payload,
            state="pending",
            next_attempt_at=now,
            created_at=now,
        )
    )


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(type(value).__name__)


Sender = Callable[[str, bytes, dict[str, str]], int]


def http_send(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST and return the HTTP status (0 when the connection failed)."""
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 (operator-set URL)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:  # noqa: S310
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


def deliver_due(engine: Engine, *, limit: int = 50, send: Sender = http_send) -> dict[str, int]:
    """Deliver one batch of due events; returns counts by outcome."""
    now = utcnow()
    with uow_from(engine) as uow:
        stmt = (
            select(WebhookEvent)
            .where(WebhookEvent.state == "pending", WebhookEvent.next_attempt_at <= now)
            .order_by(WebhookEvent.id)
            .limit(limit)
        )
        if uow.dialect == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        events = list(uow.session.scalars(stmt))
        # Lease the batch: a worker that dies mid-batch leaves the events due again after the lease.
        lease_until = now + timedelta(seconds=len(events) * TIMEOUT + LEASE_MARGIN)
        for ev in events:
            ev.next_attempt_at = lease_until
        jobs = []
        for ev in events:
            ep = uow.session.get(WebhookEndpoint, ev.institution_id)
            secret = (
                crypto.decrypt(ep.secret_enc, purpose=SECRET_PURPOSE, aad=str(ev.institution_id))
                if ep
                else None
            )
            jobs.append((ev.id, ev.event_id, ev.payload, ev.attempts, ep.url if ep else None, secret))
        uow.commit()
    counts = {"delivered": 0, "retry": 0, "dead": 0}
    for row_id, event_id, payload, attempts, url, secret in jobs:
        status = 0
        if url and secret:
            ts = int(time.time())
            body = payload.encode()
            headers = {
                "content-type": "application/json",
                "webhook-id": event_id,
                "webhook-timestamp": str(ts),
                "webhook-signature": sign(secret, event_id, ts, body),
                "user-agent": "yibao-webhooks/1",
            }
            status = send(url, body, headers)
        done = 200 <= status < 300
        attempts += 1
        values: dict[str, Any] = {"attempts": attempts}
        if done:
            values.update(state="delivered", delivered_at=utcnow(), last_error=None)
            counts["delivered"] += 1
        elif attempts >= MAX_ATTEMPTS:
            values.update(state="dead", last_error=f"HTTP {status}" if status else "connection failed")
            counts["dead"] += 1
        else:
            values.update(
                next_attempt_at=utcnow() + timedelta(seconds=backoff(attempts)),
                last_error=f"HTTP {status}" if status else "connection failed",
            )
            counts["retry"] += 1
        with uow_from(engine) as uow:
            # Only while the lease is still ours: if another worker took the event over (this one was
            # slower than the lease), its outcome stands and this one is dropped.
            uow.session.execute(
                update(WebhookEvent)
                .where(
                    WebhookEvent.id == row_id,
                    WebhookEvent.state == "pending",
                    WebhookEvent.attempts == attempts - 1,
                    WebhookEvent.next_attempt_at == lease_until,
                )
                .values(**values)
            )
            uow.commit()
    return counts


def run(engine: Engine, *, once: bool = False, interval: float = 1.0, send: Sender = http_send) -> None:
    """The worker loop (`yibao webhooks run`)."""
    while True:
        counts = deliver_due(engine, send=send)
        if once:
            return
        if not any(counts.values()):
            time.sleep(interval)
