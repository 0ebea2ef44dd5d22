"""The interface other domains call (voucher/ and payments/); they never read family tables.

  - acting_permission(uow, actor_person_id=..., member_psn_no=..., action=...) -> member person id
  - mutual_aid_holders(uow, member_person_id=..., filed=True) -> list[int] of holder person ids, in
    charge order
  - may_have_mutual_aid_holders(member_person_id_column) -> a boolean expression for the caller's
    statement, passed back as `filed`: false means no approved filing, so `pay` spares that round trip

Both run on every delegated request or payment, so their statements are prebuilt (queries.py).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Exists

from yibao.db import UnitOfWork
from yibao.errors import AppError
from yibao.registry import services as registry

from . import clock
from . import errors as _errors  # noqa: F401 - registers BINDING_NOT_ACTIVE for the callers' answers
from .lifecycle import effective_status
from .queries import HOLDERS, LIVE_BINDING, active_filings_of

ACTIONS = ("show_voucher", "pay", "read_usage", "read_account")


def acting_permission(uow: UnitOfWork, *, actor_person_id: int, member_psn_no: str, action: str) -> int:
    """Return the member's person id if the actor may do `action` (one of ACTIONS) for them now.

    Checked on every request, from the clock: a pending binding (new, or a guardian binding of a
    child who turned 17) is BINDING_NOT_ACTIVE; no live binding (none, ended, declined, expired)
    or an unknown psn_no is NOT_PERMITTED; a suspended member or actor is PERSON_SUSPENDED.
    Acting for oneself is allowed (on_behalf_of = own psn_no). A mutual-aid filing grants no acting.

    Raises: NOT_PERMITTED, BINDING_NOT_ACTIVE, PERSON_SUSPENDED (ValueError for an unknown action).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown family action {action!r}")
    member = registry.person_by_psn_no(uow, member_psn_no) if isinstance(member_psn_no, str) else None
    if member is None:
        raise AppError("NOT_PERMITTED")
    if member.id == actor_person_id:
        return member.id
    # The actor acts through institutions too (an order placed and paid on their authorization), where
    # no user login checks them: a suspended actor may act for nobody. Share-locked like the payer at
    # pay time, so a concurrent suspension waits for the delegated action.
    if registry.person_status_locked(uow, actor_person_id) != "active":
        raise AppError("PERSON_SUSPENDED")
    b = uow.session.scalar(LIVE_BINDING, {"binder_person_id": actor_person_id, "member_person_id": member.id})
    if b is None:
        raise AppError("NOT_PERMITTED")
    status = effective_status(b, member, clock.now())
    if status == "pending":
        raise AppError("BINDING_NOT_ACTIVE", binding_id=b.binding_no)
    if status != "active":
        raise AppError("NOT_PERMITTED")
    if member.status != "active":
        raise AppError("PERSON_SUSPENDED")
    return member.id


def mutual_aid_holders(uow: UnitOfWork, *, member_person_id: int, filed: bool = True) -> list[int]:
    """Person ids whose personal accounts may pay for this member (family mutual aid), in order.

    `filed=False` is what may_have_mutual_aid_holders answered in the caller's statement of this
    transaction: no approved filing, so the answer is [] without a statement of its own.

    Only filings the member APPROVED (active) count: a pending, declined, expired or withdrawn
    filing moves no money. Order: oldest filing first. Only active employee holders count (a
    suspended holder's account is frozen). FOR SHARE on PostgreSQL: a withdrawal waits for a
    payment that already read the filing, and a payment after the withdrawal's commit no longer sees it.
    """
    if not filed:
        return []
    return list(uow.session.scalars(HOLDERS, {"member_person_id": member_person_id}))


def may_have_mutual_aid_holders(member_person_id: ColumnElement[int]) -> Exists:
    """Does an approved (active) filing name this member? An expression to embed in the caller's
    statement (`member_person_id` is a column of it). False: mutual_aid_holders answers [] (no filing
    to lock either). True: call mutual_aid_holders, which applies the holders' own conditions."""
    return active_filings_of(member_person_id)
