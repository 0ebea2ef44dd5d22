"""The ec_token: what a verification hands to the institution, and what payments resolve it to.

The interface other domains call (`from voucher import ec_tokens`): issue_ec_token,
resolve_ec_token, EcTokenGrant. Tokens are stored hashed and live 30 minutes.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from yibao.db import UnitOfWork, utcnow
from yibao.errors import AppError

from . import queries
from .models import EcToken

EC_TOKEN_TTL = 30 * 60


@dataclass(frozen=True)
class EcTokenGrant:
    """What an ec_token lets its institution do: act for this person, for this business type."""

    person_id: int
    institution_id: int
    business_type: str
    expires_at: datetime
    actor_person_id: int | None = None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_ec_token(
    uow: UnitOfWork,
    *,
    person_id: int,
    institution_id: int,
    business_type: str,
    actor_person_id: int | None = None,
    ttl: int = EC_TOKEN_TTL,
) -> tuple[str, datetime]:
    """Create an ec_token (39 chars) bound to the institution, business type and person."""
    token = "ec_" + secrets.token_urlsafe(27)
    now = utcnow()
    expires_at = now + timedelta(seconds=ttl)
    uow.core().execute(
        queries.INSERT_EC_TOKEN,
        {
            "token_hash": _hash(token),
            "person_id": person_id,
            "institution_id": institution_id,
            "business_type": business_type,
            "actor_person_id": actor_person_id,
            "created_at": now,
            "expires_at": expires_at,
        },
    )
    return token, expires_at


def resolve_ec_token(uow: UnitOfWork, token: str, *, institution_id: int) -> EcTokenGrant:
    """Look up a live ec_token of this institution.

    Raises:
        EC_TOKEN_INVALID: unknown, expired, revoked (the person was suspended), or another
            institution's token.
    """
    if not isinstance(token, str) or not token.startswith("ec_") or len(token) > 40:
        raise AppError("EC_TOKEN_INVALID")
    row = uow.session.scalar(select(EcToken).where(EcToken.token_hash == _hash(token)))
    if (
        row is None
        or row.institution_id != institution_id
        or row.revoked_at is not None
        or row.expires_at <= utcnow()
    ):
        raise AppError("EC_TOKEN_INVALID")
    return EcTokenGrant(
        row.person_id, row.institution_id, row.business_type, row.expires_at, row.actor_person_id
    )


def revoke_ec_tokens_of(uow: UnitOfWork, person_id: int) -> None:
    """End the person's ec_tokens not yet used for payment (suspension)."""
    uow.session.execute(
        update(EcToken)
        .where(EcToken.person_id == person_id, EcToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
