"""Offline credentials: the per-device secrets YO1 codes are made with (voucher/offline.py).

One active credential per person and device (a new one replaces it); the secret is shown once and
stored encrypted (yibao/crypto.py, the credential id as associated data). Credentials end by DELETE,
by the lost-phone revocation, by suspension and by activation on another device (voucher/subjects.py).
Offline codes are the person's own: a family member's code stays online (POST /vouchers on_behalf_of).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from yibao import crypto
from yibao.auth.models import AuthSession
from yibao.db import UnitOfWork, utcnow
from yibao.errors import AppError

from .models import OfflineCredential
from .offline import ENCRYPTION_PURPOSE, PERIOD_S

LIST_MAX = 50
# The codes the credential services answer (documented on their routes).
CREATE_CODES = ("DEVICE_NOT_ACTIVATED",)
END_CODES = ("OFFLINE_CREDENTIAL_NOT_FOUND",)


@dataclass(frozen=True)
class NewCredential:
    """The answer of POST /offline-credentials: the only time the secret is shown."""

    credential_id: str
    secret: str
    device_id: str
    created_at: datetime
    period_s: int = PERIOD_S
    algorithm: str = "HMAC-SHA256"
    format: str = "YO1"


@dataclass(frozen=True)
class CredentialItem:
    credential_id: str
    device_id: str
    status: str  # active | ended
    created_at: datetime
    ended_at: datetime | None
    ended_reason: str | None


def _new_id() -> str:
    """16 characters of upper-case base32 (80 bits): the whole YO1 code stays in the QR
    alphanumeric set (voucher/qr.py), so it renders at version 3, level M."""
    return base64.b32encode(secrets.token_bytes(10)).decode()


def _new_secret() -> str:
    return base64.b32encode(secrets.token_bytes(32)).decode().rstrip("=")  # 52 characters


def create(uow: UnitOfWork, *, person_id: int, session_id: str, device_id: str) -> NewCredential:
    """A new credential for the caller's activated device; the device's previous one ends (replaced).

    The device must be the one the caller's session was opened on at activation (auth_sessions).
    Race-safe: the unique partial index lets one active row per (person, device); a concurrent
    creation that loses the insert ends the winner's row and inserts again (the last one wins).

    Raises:
        DEVICE_NOT_ACTIVATED: device_id is not the device of the caller's session.
    """
    session_device = uow.session.scalar(select(AuthSession.device_id).where(AuthSession.id == session_id))
    if session_device != device_id:
        raise AppError("DEVICE_NOT_ACTIVATED")
    cid, secret = _new_id(), _new_secret()
    secret_enc = crypto.encrypt(secret, purpose=ENCRYPTION_PURPOSE, aad=cid)
    for attempt in range(3):
        this_device = (OfflineCredential.person_id == person_id, OfflineCredential.device_id == device_id)
        end_where(uow, "replaced", *this_device)
        row = OfflineCredential(
            id=cid, person_id=person_id, device_id=device_id, secret_enc=secret_enc, created_at=utcnow()
        )
        try:
            with uow.session.begin_nested():
                uow.session.add(row)
            break
        except IntegrityError:  # a concurrent creation for this device committed between the two
            if attempt == 2:
                raise
    return NewCredential(cid, secret, device_id, row.created_at)


def end_where(uow: UnitOfWork, reason: str, *criteria: object) -> int:
    """End the active credentials matching the criteria; returns how many."""
    return uow.session.execute(
        update(OfflineCredential)
        .where(OfflineCredential.ended_at.is_(None), *criteria)
        .values(ended_at=utcnow(), ended_reason=reason)
        .execution_options(synchronize_session=False)
    ).rowcount


def end_all(uow: UnitOfWork, person_id: int, reason: str) -> int:
    """End every active credential of the person (lost phone, suspension)."""
    return end_where(uow, reason, OfflineCredential.person_id == person_id)


def end_other_devices(uow: UnitOfWork, person_id: int, device_id: str | None) -> int:
    """Activation on a device ends the credentials of every other device."""
    return end_where(
        uow, "new_device", OfflineCredential.person_id == person_id, OfflineCredential.device_id != device_id
    )


def end_one(uow: UnitOfWork, *, person_id: int, credential_id: str) -> None:
    """End one of the caller's credentials (ending an ended one again is a no-op).

    Raises:
        OFFLINE_CREDENTIAL_NOT_FOUND: no credential of the caller has this id (another person's
            answers the same: no oracle).
    """
    owner = uow.session.scalar(
        select(OfflineCredential.person_id).where(OfflineCredential.id == credential_id)
    )
    if owner != person_id:
        raise AppError("OFFLINE_CREDENTIAL_NOT_FOUND")
    end_where(uow, "deleted", OfflineCredential.id == credential_id)


def list_of(uow: UnitOfWork, person_id: int) -> list[CredentialItem]:
    """The caller's credentials, newest first (at most LIST_MAX); never the secret."""
    rows = uow.session.scalars(
        select(OfflineCredential)
        .where(OfflineCredential.person_id == person_id)
        .order_by(OfflineCredential.created_at.desc(), OfflineCredential.id)
        .limit(LIST_MAX)
    ).all()
    return [
        CredentialItem(
            r.id,
            r.device_id,
            "active" if r.ended_at is None else "ended",
            r.created_at,
            r.ended_at,
            r.ended_reason,
        )
        for r in rows
    ]
