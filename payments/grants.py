"""Pay authorizations: the user's single-use consent to one payment (a pay_auth_no, or a counter
ec_token from the e-voucher), created here and consumed when an order is placed."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from voucher import ec_tokens as voucher
from yibao.db import UnitOfWork, utcnow
from yibao.errors import AppError
from yibao.registry import services as registry
from yibao.registry.models import Institution

from . import payers
from .models import PaymentGrant

PAY_AUTH_TTL = timedelta(minutes=5)
PAYABLE_BUSINESS_TYPES = ("02121", "01301")  # pharmacy purchase, settlement
PURPOSES = ("online_otc", "counter")


def create_pay_authorization(
    uow: UnitOfWork, *, actor_person_id: int, purpose: str, on_behalf_of: str | None
) -> PaymentGrant:
    """A single-use pay_auth_no valid 5 minutes; the payer is the member when acting on behalf.

    Raises: PERSON_SUSPENDED, NOT_PERMITTED, BINDING_NOT_ACTIVE.
    """
    payer_id = payers.acting_member(uow, actor_person_id, on_behalf_of, "pay")
    payer = registry.person_by_id(uow, payer_id)
    if payer is None or payer.status != "active":
        raise AppError("PERSON_SUSPENDED")
    now = utcnow()
    grant = PaymentGrant(
        grant_key="pa_" + secrets.token_urlsafe(24),
        source="pay_auth",
        purpose=purpose,
        person_id=payer_id,
        actor_person_id=actor_person_id if actor_person_id != payer_id else None,
        expires_at=now + PAY_AUTH_TTL,
        created_at=now,
    )
    uow.session.add(grant)
    uow.session.flush()
    return grant


def designated(inst: Institution, purpose: str) -> bool:
    """Online OTC needs the online_otc designation; counter payment one of the payable business types."""
    if purpose == "online_otc":
        return inst.designated_for("online_otc")
    return any(inst.designated_for(bt) for bt in PAYABLE_BUSINESS_TYPES)


def use_grant(
    uow: UnitOfWork, inst: Institution, *, pay_auth_no: str | None, ec_token: str | None, now: datetime
) -> PaymentGrant:
    """Consume a pay_auth_no, or record an ec_token as used; both are single-use.

    Raises: PAY_AUTH_INVALID, PAY_AUTH_ALREADY_USED, INSTITUTION_NOT_DESIGNATED,
    BUSINESS_TYPE_NOT_PAYABLE (and the codes of voucher.ec_tokens.resolve_ec_token).
    """
    if pay_auth_no is not None:
        grant = uow.session.scalar(
            select(PaymentGrant).where(
                PaymentGrant.grant_key == pay_auth_no, PaymentGrant.source == "pay_auth"
            )
        )
        if grant is None or grant.expires_at <= now:
            raise AppError("PAY_AUTH_INVALID")
        if grant.used_at is not None:
            raise AppError("PAY_AUTH_ALREADY_USED")
        if not designated(inst, grant.purpose):
            raise AppError("INSTITUTION_NOT_DESIGNATED")
        # Conditional: of two concurrent orders quoting one pay_auth_no only one gets the row.
        res = uow.session.execute(
            update(PaymentGrant)
            .where(PaymentGrant.id == grant.id, PaymentGrant.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:
            raise AppError("PAY_AUTH_ALREADY_USED")
        return grant
    assert ec_token is not None
    ec = voucher.resolve_ec_token(uow, ec_token, institution_id=inst.id)
    if ec.business_type not in PAYABLE_BUSINESS_TYPES:
        raise AppError("BUSINESS_TYPE_NOT_PAYABLE")
    if not designated(inst, "counter"):
        raise AppError("INSTITUTION_NOT_DESIGNATED")
    return grant_of_ec_token(uow, ec_token, ec, now)


def grant_of_ec_token(
    uow: UnitOfWork, ec_token: str, ec: voucher.EcTokenGrant, now: datetime
) -> PaymentGrant:
    """An ec_token pays one order: its grant row, used at once (unique by the token's hash).

    Raises: PAY_AUTH_ALREADY_USED when the ec_token already placed an order.
    """
    grant = PaymentGrant(
        grant_key=hashlib.sha256(ec_token.encode()).hexdigest(),
        source="ec_token",
        purpose="counter",
        person_id=ec.person_id,
        actor_person_id=ec.actor_person_id,
        expires_at=ec.expires_at,
        used_at=now,
        created_at=now,
    )
    try:
        with uow.session.begin_nested():
            uow.session.add(grant)
    except IntegrityError as exc:
        raise AppError("PAY_AUTH_ALREADY_USED") from exc
    return grant
