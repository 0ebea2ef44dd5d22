"""Who pays: the caller, or the family member they act for (checked through family_accounts.acting),
and the mutual-aid holders whose accounts cover what the payer's own account cannot."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select

from family_accounts import acting as family
from yibao.db import UnitOfWork
from yibao.errors import AppError
from yibao.registry import services as registry

from . import ledger
from .models import Account, PaymentGrant


def acting_member(uow: UnitOfWork, actor_person_id: int, on_behalf_of: str | None, action: str) -> int:
    """The person the caller acts for: themself, or a family member if family_accounts allows it.

    Raises: NOT_PERMITTED (and the codes of family_accounts.acting.acting_permission).
    """
    if not on_behalf_of:
        return actor_person_id
    me = registry.person_by_id(uow, actor_person_id)
    if me is not None and me.psn_no == on_behalf_of:
        return actor_person_id
    return family.acting_permission(
        uow, actor_person_id=actor_person_id, member_psn_no=on_behalf_of, action=action
    )


def recheck_actor(uow: UnitOfWork, *, actor_person_id: int | None, payer_person_id: int, source: str) -> None:
    """A payment made by someone acting for the payer needs the family permission still to hold now.

    Raises: NOT_PERMITTED.
    """
    if actor_person_id is None or actor_person_id == payer_person_id:
        return
    payer = registry.person_by_id(uow, payer_person_id)
    assert payer is not None
    # A pay_auth_no was given under "pay"; a counter ec_token came from a code shown under "show_voucher".
    action = "pay" if source == "pay_auth" else "show_voucher"
    if (
        family.acting_permission(
            uow, actor_person_id=actor_person_id, member_psn_no=payer.psn_no, action=action
        )
        != payer_person_id
    ):
        raise AppError("NOT_PERMITTED")


_GRANTS = PaymentGrant.__table__
_GRANT_SOURCE = select(_GRANTS.c.source).where(_GRANTS.c.id == bindparam("grant_id"))


def recheck_order_actor(uow: UnitOfWork, order: Any) -> None:
    """recheck_actor for an order being paid (`order`: its columns): the binding of whoever acted for
    the payer may have ended since the order was placed; the grant's source read only then.

    Raises: NOT_PERMITTED (and the codes of family_accounts.acting.acting_permission).
    """
    if order.actor_person_id is None:
        return
    source = uow.core().execute(_GRANT_SOURCE, {"grant_id": order.grant_id}).scalar()
    recheck_actor(
        uow, actor_person_id=order.actor_person_id, payer_person_id=order.payer_person_id, source=source
    )


def holder_person_ids(uow: UnitOfWork, payer_id: int, *, filed: bool = True) -> list[int]:
    """The payer's mutual-aid holders in charge order (family_accounts decides the order); `filed` is
    family.may_have_mutual_aid_holders read earlier in this transaction (False: none, no statement)."""
    holders = family.mutual_aid_holders(uow, member_person_id=payer_id, filed=filed)
    return [pid for pid in holders if pid != payer_id]


def holder_accounts(uow: UnitOfWork, payer_id: int) -> list[Account]:
    """The holders' personal accounts in charge order (holders without one are skipped)."""
    accts = []
    for pid in holder_person_ids(uow, payer_id):
        a = ledger.personal_account(uow, pid)
        if a is not None:
            accts.append(a)
    return accts
