"""Idempotency keys of institutions: claim, replay, complete, release. No Flask here.

A request claims (institution, key) in its own short transaction. The business work then runs in
another transaction which also marks the claim done with the response, so the effect and the stored
response commit together: a crash before that commit leaves no effect, and the in-progress claim
becomes retryable once `locked_until` has passed. A claim taken over after its lease carries a new
token, so the slow original can no longer complete (its transaction rolls back instead).

Keys are kept per UTC month (period_start, the partition key on PostgreSQL: yibao/partitions.py), so
the unique key alone cannot see a retry of last month's key. Near a month boundary (the first 24 h
of a month plus a margin, and the margin before its end) every claim therefore takes the locking path
of begin(): a lock on the key (queries.lock_idempotency_key), then a look for a live claim of the key
in the neighbouring months, then the insert, so a retry across the boundary never executes twice.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from yibao.db import UnitOfWork, utcnow
from yibao.errors import AppError
from yibao.partitions import add_months, month_start
from yibao.prepared import Prepared

from . import queries
from .models import IdempotencyKey

RETENTION = timedelta(hours=24)
# Clock skew between servers and the longest claim statement in flight: a claim this close to a
# month boundary serializes with the claims on the other side of it.
BOUNDARY_MARGIN = timedelta(minutes=10)
MAX_KEY_LEN = 255


@dataclass(frozen=True)
class Claim:
    """We own this key until locked_until; complete() needs the token. `period_start` is the row's
    month (its partition on PostgreSQL): complete and release name it, so only that partition is read."""

    id: int
    token: str
    period_start: datetime


@dataclass(frozen=True)
class Stored:
    """A finished request's response, to be replayed."""

    status: int
    body: str


def request_hash(method: str, path: str, body: bytes) -> str:
    """Hash of what the request asks for; JSON bodies are canonicalized so key order does not matter."""
    try:
        canon = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        canon = body.decode("latin-1")
    return hashlib.sha256(f"{method}\n{path}\n{canon}".encode()).hexdigest()


def check_key(key: str | None) -> str:
    """A usable key: 1..255 visible ASCII characters."""
    if not key or len(key) > MAX_KEY_LEN or not all(33 <= ord(c) < 127 for c in key):
        raise AppError("IDEMPOTENCY_KEY_REQUIRED")
    return key


def _claim_values(institution_id: int, key: str, req_hash: str, lock_seconds: float, now: datetime) -> dict:
    return {
        "institution_id": institution_id,
        "key": key,
        "request_hash": req_hash,
        "state": "in_progress",
        "claim_token": secrets.token_hex(16),
        "locked_until": now + timedelta(seconds=lock_seconds),
        "created_at": now,
        "expires_at": now + RETENTION,
        "period_start": month_start(now),
    }


def near_month_boundary(now: datetime) -> bool:
    """Whether a live claim of the same key may sit in another month's partition (or soon will)."""
    start = month_start(now)
    return now - start < RETENTION + BOUNDARY_MARGIN or add_months(start, 1) - now <= BOUNDARY_MARGIN


_KEYS = IdempotencyKey.__table__
# Prebuilt (hot path: every institution POST): no statement construction per request.
_CLAIM_COLUMNS = (
    "institution_id",
    "key",
    "request_hash",
    "state",
    "claim_token",
    "locked_until",
    "created_at",
    "expires_at",
    "period_start",
)
_INSERT_CLAIM = {
    name: Prepared(
        dialect.insert(_KEYS)
        .on_conflict_do_nothing(index_elements=["institution_id", "key", "period_start"])
        .returning(_KEYS.c.id),
        _CLAIM_COLUMNS,
    )
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_COMPLETE = Prepared(
    _KEYS.update()
    .where(
        _KEYS.c.id == bindparam("claim_id"),
        _KEYS.c.period_start == bindparam("claim_month"),
        _KEYS.c.claim_token == bindparam("token"),
        _KEYS.c.state == "in_progress",
    )
    .values(state="done", response_status=bindparam("status"), response_body=bindparam("body")),
    ("claim_id", "claim_month", "token", "status", "body"),
)


def _insert_claim(uow: UnitOfWork, values: dict) -> int | None:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id: the new claim's id, or None if the key exists."""
    row = _INSERT_CLAIM[uow.dialect].first(uow, values)
    return None if row is None else row.id


def try_claim(
    uow: UnitOfWork,
    *,
    institution_id: int,
    key: str,
    req_hash: str,
    lock_seconds: float,
    now: datetime | None = None,
) -> Claim | None:
    """The common case in one statement: claim a key never seen before (committed), else None.

    None also near a month boundary (near_month_boundary): there begin() locks the key and looks in
    the neighbouring month first.

    For db.autocommit(): the single INSERT commits on its own, exactly like the claim transaction
    of begin(), so a concurrent request sees the claim at once. None means the key
    exists: call begin() in an ordinary transaction to replay, refuse or take it over.
    """
    now = now or utcnow()
    if near_month_boundary(now):
        return None  # begin(): the locking path that also looks in the neighbouring month
    values = _claim_values(institution_id, key, req_hash, lock_seconds, now)
    new_id = _insert_claim(uow, values)
    if new_id is None:
        return None
    return Claim(new_id, values["claim_token"], values["period_start"])


def begin(
    uow: UnitOfWork,
    *,
    institution_id: int,
    key: str,
    req_hash: str,
    lock_seconds: float,
    now: datetime | None = None,
) -> Claim | Stored:
    """Claim the key (committing the claim), or return the stored response, or refuse."""
    now = now or utcnow()
    values = _claim_values(institution_id, key, req_hash, lock_seconds, now)
    token = values["claim_token"]
    row = None
    if near_month_boundary(now):
        queries.lock_idempotency_key(uow, institution_id, key)  # until this transaction ends
        row = _live_neighbour(uow, institution_id, key, now)
    new_id = None if row is not None else _insert_claim(uow, values)
    if new_id is not None:
        uow.commit()
        return Claim(new_id, token, values["period_start"])
    row = row or uow.session.scalar(
        select(IdempotencyKey)
        .where(
            IdempotencyKey.institution_id == institution_id,
            IdempotencyKey.key == key,
            IdempotencyKey.period_start == values["period_start"],
        )
        .with_for_update()
    )
    assert row is not None
    if row.expires_at > now:
        if row.request_hash != req_hash:
            raise AppError("IDEMPOTENCY_KEY_REUSED")
        if row.state == "done":
            return Stored(row.response_status or 200, row.response_body or "")
        if row.locked_until > now:
            raise AppError("IDEMPOTENCY_KEY_IN_USE")
    # Expired key, or a crashed claim past its lease: take it over with a new token. A claim of the
    # neighbouring month keeps its times, so it never outlives the boundary window that finds it.
    kept = ("institution_id", "key", "period_start")
    if row.period_start != values["period_start"]:
        kept += ("created_at", "expires_at")
    uow.session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == row.id)
        .values(**{k: v for k, v in values.items() if k not in kept})
        .execution_options(synchronize_session=False)
    )
    uow.commit()
    return Claim(row.id, token, row.period_start)


_K = IdempotencyKey.__table__.c
_MONTH = _K.period_start.type
# The claim's columns that begin() decides on, for the neighbouring months' live claim (prebuilt: it runs
# on every idempotent POST near a month boundary).
_LIVE_NEIGHBOUR = Prepared(
    select(
        _K.id,
        _K.period_start,
        _K.request_hash,
        _K.state,
        _K.response_status,
        _K.response_body,
        _K.locked_until,
        _K.expires_at,
    )
    .where(
        _K.institution_id == bindparam("institution_id"),
        _K.key == bindparam("key"),
        # typed: the bind parameters of an IN list do not take the column's type
        _K.period_start.in_(
            (bindparam("previous_month", type_=_MONTH), bindparam("next_month", type_=_MONTH))
        ),
        _K.expires_at > bindparam("now"),
    )
    .order_by(_K.created_at.desc())
    .limit(1)
    .with_for_update(),
    ("institution_id", "key", "previous_month", "next_month", "now"),
)


def _live_neighbour(uow: UnitOfWork, institution_id: int, key: str, now: datetime) -> Any:
    """A live claim of the key in the previous or next month's partition (locked), if any: its columns
    (id, period_start, request_hash, state, response_status, response_body, locked_until, expires_at)."""
    this = month_start(now)
    values = {
        "institution_id": institution_id,
        "key": key,
        "previous_month": add_months(this, -1),
        "next_month": add_months(this, 1),
        "now": now,
    }
    return _LIVE_NEIGHBOUR.first(uow, values)


def complete(uow: UnitOfWork, claim: Claim, status: int, body: str) -> None:
    """Store the response in the caller's transaction; refuses if the claim was taken over."""
    values = {"claim_id": claim.id, "claim_month": claim.period_start, "token": claim.token}
    changed = _COMPLETE.run(uow, {**values, "status": status, "body": body})
    if changed != 1:
        raise AppError("IDEMPOTENCY_KEY_IN_USE")


def release(uow: UnitOfWork, claim: Claim) -> None:
    """Forget a claim whose request failed without effect (5xx), so a retry runs again."""
    uow.session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.id == claim.id,
            IdempotencyKey.period_start == claim.period_start,
            IdempotencyKey.claim_token == claim.token,
        )
    )


def purge_expired(uow: UnitOfWork, now: datetime | None = None) -> int:
    """Delete keys past their 24 h retention; returns how many."""
    res = uow.session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= (now or utcnow())))
    return res.rowcount or 0
