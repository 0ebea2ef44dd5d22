"""Family services: bindings with consent, acting for a relative, mutual-aid filings. No Flask here.

Interface other domains call (they never read family tables):
  - acting_permission(uow, actor_person_id=..., member_psn_no=..., action=...) -> member person id
    action in ACTIONS; raises AppError NOT_PERMITTED / BINDING_NOT_ACTIVE / PERSON_SUSPENDED.
  - mutual_aid_holders(uow, member_person_id=...) -> list[int] of holder person ids, in charge order.

Time comes from `family_accounts.clock` so ages, the 7-day approval window and a child's 17th
birthday can be tested by moving the clock.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.exc import IntegrityError

from yibao.db import UnitOfWork
from yibao.errors import AppError, register_messages
from yibao.identity.providers import IdentityProvider, VerifiedProof
from yibao.identity.services import consume_proof
from yibao.registry import services as registry
from yibao.registry.models import Person

from . import clock
from .models import LIVE_STATUSES, MAX_MEMBERS, BindingEvent, FamilyBinding, MutualAidFiling

ACTIONS = ("show_voucher", "pay", "read_usage", "read_account")

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
# 个人账户家庭共济: spouse, parents, children, siblings, grandparents and grandchildren (both sides:
# 祖父母/外祖父母 and 孙子女/外孙子女 are both "grandparent"/"grandchild").
MUTUAL_AID_RELATIONSHIPS = ("spouse", "parent", "child", "sibling", "grandparent", "grandchild")

CONSENT_AGE = 16  # a member older than this approves the binding themselves
PENDING_TTL = timedelta(days=7)
GUARDIAN_PROOF_PURPOSE = "family-guardian"

register_messages(
    {
        "FAMILY_LIMIT_REACHED": (409, "At most 5 active family members.", "亲情账户最多绑定 5 名成员。"),
        "RELATIONSHIP_NOT_ALLOWED": (422, "This relationship is not allowed here.", "该亲属关系不被允许。"),
        "BINDING_NOT_ACTIVE": (409, "The family binding is not active.", "亲情账户绑定未生效。"),
        "MEMBER_NOT_FOUND": (
            404,
            "No insured person with this ID number and name.",
            "未找到与该证件号码和姓名一致的参保人。",
        ),
        "SELF_NOT_ALLOWED": (422, "You cannot name yourself here.", "不能绑定或指定本人。"),
        "BINDING_EXISTS": (409, "A live binding with this member already exists.", "已存在与该成员的绑定。"),
        "BINDING_NOT_FOUND": (404, "No such family binding.", "亲情账户绑定不存在。"),
        "BINDING_NOT_PENDING": (
            409,
            "The binding is not waiting for approval.",
            "该绑定不在待确认状态。",
        ),
        "GUARDIAN_PROOF_REQUIRED": (
            422,
            "A member aged 16 or under is bound with a guardian proof.",
            "绑定 16 周岁及以下成员须提供监护关系证明。",
        ),
        "GUARDIAN_PROOF_INVALID": (
            422,
            "The guardian proof is invalid, expired or already used.",
            "监护关系证明无效、已过期或已使用。",
        ),
        "GUARDIAN_PROOF_MISMATCH": (
            403,
            "The guardian proof is not for you and this child.",
            "监护关系证明与本人或该未成年人不符。",
        ),
        "GUARDIAN_PROOF_NOT_APPLICABLE": (
            422,
            "A member over 16 approves the binding themselves; no guardian proof is taken.",
            "16 周岁以上成员须本人确认绑定，不接受监护关系证明。",
        ),
        "HOLDER_HAS_NO_PERSONAL_ACCOUNT": (
            422,
            "Only an employee-insured person with a personal account can share it.",
            "仅有个人账户的职工医保参保人可开通家庭共济。",
        ),
        "MUTUAL_AID_FILING_EXISTS": (
            409,
            "A live mutual-aid filing for this relative already exists.",
            "已为该亲属开通家庭共济。",
        ),
        "MUTUAL_AID_FILING_NOT_FOUND": (404, "No such mutual-aid filing.", "家庭共济备案不存在。"),
    }
)


# ---------------------------------------------------------------------------------------------
# Ages and the lifecycle that follows from the clock
# ---------------------------------------------------------------------------------------------


def needs_consent(member: Person, now: datetime) -> bool:
    """True when the member is over 16 on today's date (China) and so approves for themselves."""
    return clock.age_on(member.birth_date, clock.today(now)) > CONSENT_AGE


def came_of_age_deadline(member: Person) -> datetime:
    """A guardian binding needs the child's approval within 7 days of their 17th birthday."""
    return clock.start_of_day(clock.birthday(member.birth_date, CONSENT_AGE + 1)) + PENDING_TTL


def effective_status(b: FamilyBinding, member: Person, now: datetime) -> str:
    """The binding's status at `now`, whether or not the transitions were written yet."""
    if b.status == "pending":
        return "expired" if b.expires_at is not None and b.expires_at <= now else "pending"
    unconsented_guardian = b.status == "active" and b.basis == "guardian" and b.consented_at is None
    if unconsented_guardian and needs_consent(member, now):
        return "expired" if came_of_age_deadline(member) <= now else "pending"
    return b.status


def _event(uow: UnitOfWork, b: FamilyBinding, event: str, role: str, actor: int | None, at: datetime) -> None:
    """Append one audit row; it records the status the change left."""
    uow.session.add(
        BindingEvent(
            binding_id=b.id, event=event, actor_role=role, actor_person_id=actor, status_after=b.status, at=at
        )
    )


def _leave_live(b: FamilyBinding, status: str, now: datetime, by: str) -> None:
    """Move a live binding to a final status and free its slot."""
    b.status = status
    b.slot = None  # frees the binder's slot
    b.ended_at = now
    b.ended_by = by
    b.expires_at = None if status != "expired" else b.expires_at


def _settle(uow: UnitOfWork, b: FamilyBinding, member: Person, now: datetime) -> None:
    """Write the transitions the clock has made due (came of age, expiry), each with its event."""
    if b.status == "active" and effective_status(b, member, now) != "active":
        deadline = came_of_age_deadline(member)
        b.status = "pending"
        b.pending_reason = "came_of_age"
        b.expires_at = deadline
        turned = clock.start_of_day(clock.birthday(member.birth_date, CONSENT_AGE + 1))
        _event(uow, b, "came_of_age", "system", None, turned)
    if b.status == "pending" and b.expires_at is not None and b.expires_at <= now:
        _leave_live(b, "expired", b.expires_at, "system")
        _event(uow, b, "expired", "system", None, b.expires_at)
    uow.session.flush()


def _settle_for(uow: UnitOfWork, person_id: int, now: datetime) -> None:
    """Settle the live bindings where the person is binder or member and a change is due.

    Only the due rows are locked, so reads of a family stay lock-free in the common case.
    """
    base = (
        select(FamilyBinding, Person)
        .join(Person, Person.id == FamilyBinding.member_person_id)
        .where(
            or_(FamilyBinding.binder_person_id == person_id, FamilyBinding.member_person_id == person_id),
            FamilyBinding.status.in_(LIVE_STATUSES),
        )
        .order_by(FamilyBinding.id)
    )
    due = [b.id for b, member in uow.session.execute(base) if effective_status(b, member, now) != b.status]
    if not due:
        return
    locked = (
        base.where(FamilyBinding.id.in_(due))
        .with_for_update(of=FamilyBinding, key_share=True)
        .execution_options(populate_existing=True)
    )
    for b, member in uow.session.execute(locked).all():
        _settle(uow, b, member, now)


def sweep(uow: UnitOfWork, *, now: datetime | None = None) -> dict[str, int]:
    """Record every clock-driven change now due (expiries, wards turning 17); for a periodic job.

    Reads already apply these lazily; the sweep only makes the audit trail timely for bindings
    nobody looks at. Returns how many bindings moved to each status.
    """
    now = now or clock.now()
    rows = uow.session.execute(
        select(FamilyBinding, Person)
        .join(Person, Person.id == FamilyBinding.member_person_id)
        .where(
            or_(
                (FamilyBinding.status == "pending") & (FamilyBinding.expires_at <= now),
                (FamilyBinding.status == "active")
                & (FamilyBinding.basis == "guardian")
                & FamilyBinding.consented_at.is_(None),
            )
        )
        .order_by(FamilyBinding.id)
        .with_for_update(of=FamilyBinding, key_share=True, skip_locked=True)
    ).all()
    moved: dict[str, int] = {}
    for b, member in rows:
        before = b.status
        _settle(uow, b, member, now)
        if b.status != before:
            moved[b.status] = moved.get(b.status, 0) + 1
    return moved


# ---------------------------------------------------------------------------------------------
# Bindings
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BindingView:
    """A binding as one of its two sides sees it."""

    binding: FamilyBinding
    role: str  # binder | member
    status: str
    binder: Person
    member: Person


def _new_no(prefix: str) -> str:
    """An opaque public id (never the row id)."""
    return prefix + secrets.token_urlsafe(12)


def _lock_person(uow: UnitOfWork, person_id: int) -> Person:
    """Lock a person's row: serializes every change to that binder's slots (PostgreSQL)."""
    # FOR NO KEY UPDATE: serializes binders without blocking other tables' foreign-key checks on the row.
    person = uow.session.scalar(select(Person).where(Person.id == person_id).with_for_update(key_share=True))
    if person is None:  # an authenticated caller always exists
        raise AppError("NOT_PERMITTED")
    return person


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
    """Bind a relative: pending the member's approval if over 16, active at once with a guardian proof."""
    now = now or clock.now()
    if relationship not in BINDING_RELATIONSHIPS:
        raise AppError("RELATIONSHIP_NOT_ALLOWED", allowed=list(BINDING_RELATIONSHIPS))
    binder = _lock_person(uow, binder_person_id)
    member = registry.person_by_id_number(uow, member_id_number)
    # One answer for "not registered" and "wrong name": the endpoint must not tell a caller
    # whether an arbitrary ID number is insured.
    if member is None or not registry.name_matches(member, member_name):
        raise AppError("MEMBER_NOT_FOUND")
    if member.id == binder.id:
        raise AppError("SELF_NOT_ALLOWED")
    _settle_for(uow, binder.id, now)
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
        binding_no=_new_no("fb_"),
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
    _event(uow, b, "requested" if status == "pending" else "guardian_bound", "binder", binder.id, now)
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
    _settle(uow, row, member, now)
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
    """The member, from their own activated account, approves a pending binding."""
    now = now or clock.now()
    view = _member_decides(uow, binding_no, person_id, now)
    b = view.binding
    b.status = "active"
    b.consented_at = now
    b.consent_method = "member_session"
    b.pending_reason = None
    b.expires_at = None
    b.activated_at = b.activated_at or now
    _event(uow, b, "approved", "member", person_id, now)
    uow.session.flush()
    return BindingView(b, "member", b.status, view.binder, view.member)


def decline_binding(
    uow: UnitOfWork, *, binding_no: str, person_id: int, now: datetime | None = None
) -> BindingView:
    """The member declines a pending binding; the binder's slot is freed."""
    now = now or clock.now()
    view = _member_decides(uow, binding_no, person_id, now)
    b = view.binding
    _leave_live(b, "declined", now, "member")
    _event(uow, b, "declined", "member", person_id, now)
    uow.session.flush()
    return BindingView(b, "member", b.status, view.binder, view.member)


def end_binding(
    uow: UnitOfWork, *, binding_no: str, person_id: int, now: datetime | None = None
) -> BindingView:
    """Either side ends a binding at any time; ending one that is already over changes nothing."""
    now = now or clock.now()
    view = _load_for(uow, binding_no, person_id, now)
    b = view.binding
    if b.status in LIVE_STATUSES:
        _leave_live(b, "ended", now, view.role)
        _event(uow, b, "ended", view.role, person_id, now)
        uow.session.flush()
    return BindingView(b, view.role, b.status, view.binder, view.member)


def get_binding(
    uow: UnitOfWork, *, binding_no: str, person_id: int, now: datetime | None = None
) -> BindingView:
    """One binding as the caller sees it (settled first)."""
    return _load_for(uow, binding_no, person_id, now or clock.now())


def list_bindings(uow: UnitOfWork, *, person_id: int, now: datetime | None = None) -> list[BindingView]:
    """Every binding where the person is binder or member, newest first, settled first."""
    now = now or clock.now()
    _settle_for(uow, person_id, now)
    rows = uow.session.scalars(
        select(FamilyBinding)
        .where(or_(FamilyBinding.binder_person_id == person_id, FamilyBinding.member_person_id == person_id))
        .order_by(FamilyBinding.created_at.desc(), FamilyBinding.id.desc())
    ).all()
    people = _people(uow, {p for b in rows for p in (b.binder_person_id, b.member_person_id)})
    return [
        BindingView(
            b,
            "binder" if b.binder_person_id == person_id else "member",
            b.status,
            people[b.binder_person_id],
            people[b.member_person_id],
        )
        for b in rows
    ]


def _people(uow: UnitOfWork, ids: set[int]) -> dict[int, Person]:
    """Load persons by id in one query."""
    if not ids:
        return {}
    return {p.id: p for p in uow.session.scalars(select(Person).where(Person.id.in_(ids)))}


@dataclass(frozen=True)
class EventView:
    """One audit event as either side sees it."""

    binding_id: str
    event: str
    actor_role: str
    status_after: str
    at: datetime


def binding_events(
    uow: UnitOfWork, *, person_id: int, binding_no: str | None = None, now: datetime | None = None
) -> list[EventView]:
    """The audit trail of one binding, or of all the person's bindings; oldest first."""
    now = now or clock.now()
    if binding_no is not None:
        ids = [_load_for(uow, binding_no, person_id, now).binding.id]
    else:
        _settle_for(uow, person_id, now)
        ids = list(
            uow.session.scalars(
                select(FamilyBinding.id).where(
                    or_(
                        FamilyBinding.binder_person_id == person_id,
                        FamilyBinding.member_person_id == person_id,
                    )
                )
            )
        )
    rows = uow.session.execute(
        select(BindingEvent, FamilyBinding.binding_no)
        .join(FamilyBinding, FamilyBinding.id == BindingEvent.binding_id)
        .where(BindingEvent.binding_id.in_(ids))
        .order_by(BindingEvent.at, BindingEvent.id)
    ).all()
    return [EventView(no, e.event, e.actor_role, e.status_after, e.at) for e, no in rows]


# ---------------------------------------------------------------------------------------------
# Acting for a member (called by voucher/ and payments/)
# ---------------------------------------------------------------------------------------------


def acting_permission(uow: UnitOfWork, *, actor_person_id: int, member_psn_no: str, action: str) -> int:
    """Return the member's person id if the actor may do `action` for them now.

    Checked on every request, from the clock: a pending binding (new, or a guardian binding of a
    child who turned 17) is BINDING_NOT_ACTIVE; no live binding (none, ended, declined, expired)
    or an unknown psn_no is NOT_PERMITTED; a suspended member is PERSON_SUSPENDED.
    Acting for oneself is allowed (on_behalf_of = own psn_no).
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
    # FOR SHARE on PostgreSQL: an ending of this binding waits for the delegated action to commit.
    b = uow.session.scalar(
        select(FamilyBinding)
        .where(
            FamilyBinding.binder_person_id == actor_person_id,
            FamilyBinding.member_person_id == member.id,
            FamilyBinding.status.in_(LIVE_STATUSES),
        )
        .with_for_update(read=True)
    )
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


# ---------------------------------------------------------------------------------------------
# Family mutual aid (个人账户家庭共济)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilingView:
    """A mutual-aid filing as its holder or member sees it."""

    filing: MutualAidFiling
    role: str  # holder | member
    holder: Person
    member: Person


def create_mutual_aid_filing(
    uow: UnitOfWork, *, holder_person_id: int, member_psn_no: str, relationship: str
) -> FilingView:
    """The account holder lets a close relative draw on the holder's personal account."""
    if relationship not in MUTUAL_AID_RELATIONSHIPS:
        raise AppError("RELATIONSHIP_NOT_ALLOWED", allowed=list(MUTUAL_AID_RELATIONSHIPS))
    holder = _lock_person(uow, holder_person_id)
    if not holder.has_personal_account:
        raise AppError("HOLDER_HAS_NO_PERSONAL_ACCOUNT")
    member = registry.person_by_psn_no(uow, member_psn_no)
    if member is None:
        raise AppError("MEMBER_NOT_FOUND")
    if member.id == holder.id:
        raise AppError("SELF_NOT_ALLOWED")
    existing = uow.session.scalar(
        select(MutualAidFiling).where(
            MutualAidFiling.holder_person_id == holder.id,
            MutualAidFiling.member_person_id == member.id,
            MutualAidFiling.status == "active",
        )
    )
    if existing is not None:
        raise AppError("MUTUAL_AID_FILING_EXISTS", filing_id=existing.filing_no)
    filing = MutualAidFiling(
        filing_no=_new_no("maf_"),
        holder_person_id=holder.id,
        member_person_id=member.id,
        relationship=relationship,
        status="active",
        created_at=clock.now(),
    )
    uow.session.add(filing)
    try:
        uow.session.flush()
    except IntegrityError as exc:
        uow.rollback()
        raise AppError("MUTUAL_AID_FILING_EXISTS") from exc
    return FilingView(filing, "holder", holder, member)


def withdraw_mutual_aid_filing(uow: UnitOfWork, *, filing_no: str, person_id: int) -> FilingView:
    """The holder withdraws; payments started after this commit no longer draw on the account."""
    filing = uow.session.scalar(
        select(MutualAidFiling).where(MutualAidFiling.filing_no == filing_no).with_for_update(key_share=True)
    )
    if filing is None or person_id not in (filing.holder_person_id, filing.member_person_id):
        raise AppError("MUTUAL_AID_FILING_NOT_FOUND")
    if person_id != filing.holder_person_id:
        raise AppError("NOT_PERMITTED")  # only the account's owner decides who may draw on it
    if filing.status == "active":
        filing.status = "withdrawn"
        filing.withdrawn_at = clock.now()
        uow.session.flush()
    people = _people(uow, {filing.holder_person_id, filing.member_person_id})
    return FilingView(filing, "holder", people[filing.holder_person_id], people[filing.member_person_id])


def list_mutual_aid_filings(uow: UnitOfWork, *, person_id: int) -> list[FilingView]:
    """Filings where the person is the holder or the member, newest first."""
    rows = uow.session.scalars(
        select(MutualAidFiling)
        .where(
            or_(MutualAidFiling.holder_person_id == person_id, MutualAidFiling.member_person_id == person_id)
        )
        .order_by(MutualAidFiling.created_at.desc(), MutualAidFiling.id.desc())
    ).all()
    people = _people(uow, {p for f in rows for p in (f.holder_person_id, f.member_person_id)})
    return [
        FilingView(
            f,
            "holder" if f.holder_person_id == person_id else "member",
            people[f.holder_person_id],
            people[f.member_person_id],
        )
        for f in rows
    ]


# Built once: `pay` runs it on every payment, and building it cost more CPU than executing it.
_HOLDERS = (
    select(MutualAidFiling.holder_person_id)
    .join(Person, Person.id == MutualAidFiling.holder_person_id)
    .where(
        MutualAidFiling.member_person_id == bindparam("member_person_id"),
        MutualAidFiling.status == "active",
        Person.status == "active",
        Person.insurance_type == "employee",
    )
    .order_by(MutualAidFiling.created_at, MutualAidFiling.id)
    .with_for_update(read=True, of=MutualAidFiling)
)


def mutual_aid_holders(uow: UnitOfWork, *, member_person_id: int) -> list[int]:
    """Person ids whose personal accounts may pay for this member (family mutual aid), in order.

    Order: oldest live filing first. Only active employee holders count (a suspended holder's
    account is frozen). FOR SHARE on PostgreSQL: a withdrawal waits for a payment that already
    read the filing, and a payment after the withdrawal's commit no longer sees it.
    """
    return list(uow.session.scalars(_HOLDERS, {"member_person_id": member_person_id}))
