"""Bindings (亲情账户): a binder may act for a member. Request, approve, decline, end, list, audit.

Rules: at most 5 live bindings per binder (numbered slots, backed by constraints); a member over 16
approves from their own activated account within 7 days; a member aged 16 or under is bound at
once with a single-use guardian proof from the identity provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from yibao.db import UnitOfWork
from yibao.errors import AppError
from yibao.identity.providers import IdentityProvider, VerifiedProof
from yibao.identity.services import consume_proof
from yibao.registry import services as registry
from yibao.registry.models import Person

from . import clock
from . import errors as _errors  # noqa: F401 - registers the family codes
from .events import EventView, record
from .lifecycle import PENDING_TTL, leave_live, needs_consent, settle, settle_for
from .models import LIVE_STATUSES, MAX_MEMBERS, BindingEvent, FamilyBinding, new_public_no
from .queries import bindings_of, lock_person, people

# What the member is to the binder. The in-law forms are allowed for bindings only: looking after a
# spouse's elderly parents is the commonest reason to hold someone else's code, and a binding of an
# adult needs that adult's own approval anyway. They are not 近亲属 under Civil Code art. 1045, so
# family mutual aid (which moves insurance money) refuses them.
BINDING_RELATIONSHIPS = (
    "parent",
    "spouse",
    "child",
    "grandparent",
    "grandchild",
    "sibling",
    "parent_in_law",
    "child_in_law",
)
# A binder can be the legal guardian of a minor child, grandchild or younger sibling, nothing else.
GUARDIAN_RELATIONSHIPS = ("child", "grandchild", "sibling")
GUARDIAN_PROOF_PURPOSE = "family-guardian"


@dataclass(frozen=True)
class BindingView:
    """A binding as one of its two sides sees it."""

    binding: FamilyBinding
    role: str  # binder | member
    status: str
    binder: Person
    member: Person


def _verify_guardian(
    provider: IdentityProvider, proof: str, *, binder: Person, child_id_number: str
) -> VerifiedProof:
    """Check a guardian proof (not yet spent); the provider's codes become the family ones."""
    try:
        # The binder's ID number is decrypted only to compare it with the proof, never stored or shown.
        return provider.verify_guardian(
            proof, guardian_id_number=registry.reveal_id_number(binder), child_id_number=child_id_number
        )
    except AppError as exc:
        if exc.code == "IDENTITY_MISMATCH":
            raise AppError("GUARDIAN_PROOF_MISMATCH") from exc
        if exc.code == "IDENTITY_PROOF_INVALID":
            raise AppError("GUARDIAN_PROOF_INVALID") from exc
        raise


def _spend_guardian_proof(redis_client: Any, verified: VerifiedProof) -> None:
    """Make the guardian proof single-use; a second spend is GUARDIAN_PROOF_INVALID."""
    try:
        consume_proof(redis_client, verified, GUARDIAN_PROOF_PURPOSE)
    except AppError as exc:
        raise AppError("GUARDIAN_PROOF_INVALID") from exc


def create_binding(
    uow: UnitOfWork,
    provider: IdentityProvider,
    redis_client: Any,
    *,
    binder_person_id: int,
    member_id_number: str,
    member_name: str,
    relationship: str,
    guardian_proof: str | None = None,
    now: datetime | None = None,
) -> BindingView:
    """Bind a relative: pending the member's approval if over 16, active at once with a guardian proof.

    Raises: RELATIONSHIP_NOT_ALLOWED, MEMBER_NOT_FOUND, SELF_NOT_ALLOWED, BINDING_EXISTS,
    FAMILY_LIMIT_REACHED, GUARDIAN_PROOF_NOT_APPLICABLE, GUARDIAN_PROOF_REQUIRED,
    GUARDIAN_PROOF_INVALID, GUARDIAN_PROOF_MISMATCH.
    """
    now = now or clock.now()
    if relationship not in BINDING_RELATIONSHIPS:
        raise AppError("RELATIONSHIP_NOT_ALLOWED", allowed=list(BINDING_RELATIONSHIPS))
    binder = lock_person(uow, binder_person_id)
    member = registry.person_by_id_number(uow, member_id_number)
    # One answer for "not registered" and "wrong name": the endpoint must not tell a caller
    # whether an arbitrary ID number is insured.
    if member is None or not registry.name_matches(member, member_name):
        raise AppError("MEMBER_NOT_FOUND")
    if member.id == binder.id:
        raise AppError("SELF_NOT_ALLOWED")
    settle_for(uow, binder.id, now)
    live = uow.session.scalars(
        select(FamilyBinding).where(
            FamilyBinding.binder_person_id == binder.id, FamilyBinding.status.in_(LIVE_STATUSES)
        )
    ).all()
    existing = next((b for b in live if b.member_person_id == member.id), None)
    if existing is not None:
        raise AppError("BINDING_EXISTS", binding_id=existing.binding_no, binding_status=existing.status)
    free = sorted(set(range(1, MAX_MEMBERS + 1)) - {b.slot for b in live})
    if not free:
        raise AppError("FAMILY_LIMIT_REACHED", limit=MAX_MEMBERS)
    verified: VerifiedProof | None = None
    if needs_consent(member, now):
        if guardian_proof is not None:
            raise AppError("GUARDIAN_PROOF_NOT_APPLICABLE")
        status, basis = "pending", "consent"
    else:
        if relationship not in GUARDIAN_RELATIONSHIPS:
            raise AppError("RELATIONSHIP_NOT_ALLOWED", allowed=list(GUARDIAN_RELATIONSHIPS))
        if guardian_proof is None:
            raise AppError("GUARDIAN_PROOF_REQUIRED")
        verified = _verify_guardian(provider, guardian_proof, binder=binder, child_id_number=member_id_number)
        status, basis = "active", "guardian"
    b = FamilyBinding(
        binding_no=new_public_no("fb_"),
        binder_person_id=binder.id,
        member_person_id=member.id,
        relationship=relationship,
        basis=basis,
        status=status,
        slot=free[0],
        pending_reason="awaiting_member" if status == "pending" else None,
        expires_at=now + PENDING_TTL if status == "pending" else None,
        activated_at=now if status == "active" else None,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(b)
    try:
        uow.session.flush()
    except IntegrityError as exc:  # the constraints caught a race the row lock should have prevented
        uow.rollback()
        if "slot" in str(exc.orig):
            raise AppError("FAMILY_LIMIT_REACHED", limit=MAX_MEMBERS) from exc
        raise AppError("BINDING_EXISTS") from exc
    if verified is not None:
        # Spent only once the row is in: a refused request leaves the proof usable, and a proof
        # presented twice at once binds once (the loser's transaction is rolled back unwritten).
        _spend_guardian_proof(redis_client, verified)
    record(uow, b, "requested" if status == "pending" else "guardian_bound", "binder", binder.id, now)
    uow.session.flush()
    return BindingView(b, "binder", b.status, binder, member)


def _load_for(uow: UnitOfWork, binding_no: str, person_id: int, now: datetime) -> BindingView:
    """Load (and lock) a binding the person is a side of; settle it first. Others get 404."""
    row = uow.session.execute(
        select(FamilyBinding).where(FamilyBinding.binding_no == binding_no).with_for_update(key_share=True)
    ).scalar_one_or_none()
    if row is None or person_id not in (row.binder_person_id, row.member_person_id):
        raise AppError("BINDING_NOT_FOUND")
    member = uow.session.get(Person, row.member_person_id)
    binder = uow.session.get(Person, row.binder_person_id)
    assert member is not None and binder is not None
    settle(uow, row, member, now)
    role = "binder" if person_id == row.binder_person_id else "member"
    return BindingView(row, role, row.status, binder, member)


def _member_decides(uow: UnitOfWork, binding_no: str, person_id: int, now: datetime) -> BindingView:
    """The pending binding the caller, as its member, may approve or decline."""
    view = _load_for(uow, binding_no, person_id, now)
    if view.role != "member":
        raise AppError("NOT_PERMITTED")  # a binder cannot consent on the member's behalf
    if view.binding.status != "pending":
        raise AppError("BINDING_NOT_PENDING", binding_status=view.binding.status)
    return view


def approve_binding(
    uow: UnitOfWork, *, binding_no: str, person_id: int, now: datetime | None = None
) -> BindingView:
    """The member, from their own activated account, approves a pending binding.

    Raises: BINDING_NOT_FOUND, NOT_PERMITTED (the binder), BINDING_NOT_PENDING.
    """
    now = now or clock.now()
    view = _member_decides(uow, binding_no, person_id, now)
    b = view.binding
    b.status = "active"
    b.consented_at = now
    b.consent_method = "member_session"
    b.pending_reason = None
    b.expires_at = None
    b.activated_at = b.activated_at or now
    record(uow, b, "approved", "member", person_id, now)
    uow.session.flush()
    return BindingView(b, "member", b.status, view.binder, view.member)


def decline_binding(
    uow: UnitOfWork, *, binding_no: str, person_id: int, now: datetime | None = None
) -> BindingView:
    """The member declines a pending binding; the binder's slot is freed.

    Raises: BINDING_NOT_FOUND, NOT_PERMITTED (the binder), BINDING_NOT_PENDING.
    """
    now = now or clock.now()
    view = _member_decides(uow, binding_no, person_id, now)
    b = view.binding
    leave_live(b, "declined", now, "member")
    record(uow, b, "declined", "member", person_id, now)
    uow.session.flush()
    return BindingView(b, "member", b.status, view.binder, view.member)


def end_binding(
    uow: UnitOfWork, *, binding_no: str, person_id: int, now: datetime | None = None
) -> BindingView:
    """Either side ends a binding at any time; ending one that is already over changes nothing.

    Raises: BINDING_NOT_FOUND.
    """
    now = now or clock.now()
    view = _load_for(uow, binding_no, person_id, now)
    b = view.binding
    if b.status in LIVE_STATUSES:
        leave_live(b, "ended", now, view.role)
        record(uow, b, "ended", view.role, person_id, now)
        uow.session.flush()
    return BindingView(b, view.role, b.status, view.binder, view.member)


def get_binding(
    uow: UnitOfWork, *, binding_no: str, person_id: int, now: datetime | None = None
) -> BindingView:
    """One binding as the caller sees it (settled first).

    Raises: BINDING_NOT_FOUND.
    """
    return _load_for(uow, binding_no, person_id, now or clock.now())


def list_bindings(uow: UnitOfWork, *, person_id: int, now: datetime | None = None) -> list[BindingView]:
    """Every binding where the person is binder or member, newest first, settled first."""
    now = now or clock.now()
    settle_for(uow, person_id, now)
    rows = uow.session.scalars(
        select(FamilyBinding)
        .where(bindings_of(person_id))
        .order_by(FamilyBinding.created_at.desc(), FamilyBinding.id.desc())
    ).all()
    parties = people(uow, {p for b in rows for p in (b.binder_person_id, b.member_person_id)})
    return [
        BindingView(
            b,
            "binder" if b.binder_person_id == person_id else "member",
            b.status,
            parties[b.binder_person_id],
            parties[b.member_person_id],
        )
        for b in rows
    ]


def binding_events(
    uow: UnitOfWork, *, person_id: int, binding_no: str | None = None, now: datetime | None = None
) -> list[EventView]:
    """The audit trail of one binding, or of all the person's bindings; oldest first.

    Raises: BINDING_NOT_FOUND (one binding the person is not a side of).
    """
    now = now or clock.now()
    if binding_no is not None:
        ids = [_load_for(uow, binding_no, person_id, now).binding.id]
    else:
        settle_for(uow, person_id, now)
        ids = list(uow.session.scalars(select(FamilyBinding.id).where(bindings_of(person_id))))
    rows = uow.session.execute(
        select(BindingEvent, FamilyBinding.binding_no)
        .join(FamilyBinding, FamilyBinding.id == BindingEvent.binding_id)
        .where(BindingEvent.binding_id.in_(ids))
        .order_by(BindingEvent.at, BindingEvent.id)
    ).all()
    return [EventView(no, e.event, e.actor_role, e.status_after, e.at) for e, no in rows]
