"""Per-person voucher state: the opaque `sub` codes carry, the revocation watermark, and the
registry hooks that move it (person created, suspended, activated)."""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from yibao.db import UnitOfWork
from yibao.registry.models import Person
from yibao.sqlite_writer import UowFactory

from . import credentials, ec_tokens
from .models import Subject


def _new_ref() -> str:
    return secrets.token_urlsafe(6)  # 8 characters, 48 bits: every byte counts in the QR code


def create_subject(uow: UnitOfWork, person_id: int) -> Subject:
    """Give a person their opaque voucher reference (called from the person_created hook)."""
    for _ in range(5):
        try:
            with uow.session.begin_nested():
                row = Subject(person_id=person_id, sub=_new_ref(), revoked_before_ms=0)
                uow.session.add(row)
            return row
        except IntegrityError:  # the 48-bit reference collided, or a concurrent insert for this person
            existing = uow.session.get(Subject, person_id)
            if existing is not None:
                return existing
    raise RuntimeError("could not allocate a voucher subject")


def subject_of(uow: UnitOfWork, person_id: int) -> Subject | None:
    return uow.session.get(Subject, person_id)


def subject_or_create(uow: UnitOfWork, person_id: int, write_uow: UowFactory) -> Subject:
    """The person's subject; persons created before this package existed get one in a separate,
    committed transaction (`uow` may be read-only or autocommit)."""
    row = subject_of(uow, person_id)
    if row is not None:
        return row
    with write_uow(False) as wuow:
        created = create_subject(wuow, person_id)
        wuow.commit()
        return created


def revoke_outstanding(uow: UnitOfWork, person_id: int, now: float | None = None) -> int:
    """Void every code issued to (or shown by) this person so far; returns the watermark in ms.

    A code's issue instant is iat plus the milliseconds carried in its jti (claims.new_jti), so a
    code issued a moment after the revocation is valid and one issued a moment before is not. Ties
    within the same millisecond count as before: refusing is the safe side.
    """
    now = time.time() if now is None else now
    row = subject_of(uow, person_id) or create_subject(uow, person_id)
    row.revoked_before_ms = max(row.revoked_before_ms, math.floor(now * 1000) + 1)
    uow.session.flush()
    return row.revoked_before_ms


@dataclass(frozen=True)
class Revocation:
    """The answer of POST /vouchers/revocations: codes issued before this instant are void."""

    revoked_before: datetime


def revoke_all(uow: UnitOfWork, person_id: int) -> Revocation:
    """The lost-phone revocation of the caller's outstanding codes and offline credentials (the
    caller commits)."""
    watermark = revoke_outstanding(uow, person_id)
    credentials.end_all(uow, person_id, "revoked")
    return Revocation(datetime.fromtimestamp(watermark / 1000, UTC))


def on_person_created(uow: UnitOfWork, person: Person, opening_balance_fen: int = 0) -> None:
    create_subject(uow, person.id)


def on_person_suspended(uow: UnitOfWork, person: Person) -> None:
    """A suspended person's codes die at once, and so do ec_tokens not yet used for payment.

    While the person stays suspended a scan of such a code answers PERSON_SUSPENDED, not
    VOUCHER_REVOKED (verification.decide); once active again, the watermark speaks.
    """
    revoke_outstanding(uow, person.id)
    ec_tokens.revoke_ec_tokens_of(uow, person.id)
    credentials.end_all(uow, person.id, "suspended")  # scans answer PERSON_SUSPENDED meanwhile (offline.py)


def on_person_activated(uow: UnitOfWork, person: Person) -> None:
    """Activation on a (new) device ends the codes the old device may still show, and the offline
    credentials of every other device."""
    revoke_outstanding(uow, person.id)
    credentials.end_other_devices(uow, person.id, person.device_id)
