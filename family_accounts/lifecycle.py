"""What the clock does to bindings: ages, the 7-day approval window, a ward turning 17, the sweep.

Time comes from `family_accounts.clock`, so tests move the clock instead of waiting. Every read
applies these transitions lazily (`settle_for`); `sweep` records them for bindings nobody looks at.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from yibao.db import UnitOfWork
from yibao.registry.models import Person

from . import clock
from .events import record
from .models import LIVE_STATUSES, FamilyBinding
from .queries import bindings_of

CONSENT_AGE = 16  # a member older than this approves the binding themselves
PENDING_TTL = timedelta(days=7)  # how long a binding (or a mutual-aid filing) waits for approval


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


def leave_live(b: FamilyBinding, status: str, now: datetime, by: str) -> None:
    """Move a live binding to a final status and free its slot."""
    b.status = status
    b.slot = None  # frees the binder's slot
    b.ended_at = now
    b.ended_by = by
    b.expires_at = None if status != "expired" else b.expires_at


def settle(uow: UnitOfWork, b: FamilyBinding, member: Person, now: datetime) -> None:
    """Write the transitions the clock has made due (came of age, expiry), each with its event."""
    if b.status == "active" and effective_status(b, member, now) != "active":
        deadline = came_of_age_deadline(member)
        b.status = "pending"
        b.pending_reason = "came_of_age"
        b.expires_at = deadline
        turned = clock.start_of_day(clock.birthday(member.birth_date, CONSENT_AGE + 1))
        record(uow, b, "came_of_age", "system", None, turned)
    if b.status == "pending" and b.expires_at is not None and b.expires_at <= now:
        leave_live(b, "expired", b.expires_at, "system")
        record(uow, b, "expired", "system", None, b.expires_at)
    uow.session.flush()


def settle_for(uow: UnitOfWork, person_id: int, now: datetime) -> None:
    """Settle the live bindings where the person is binder or member and a change is due.

    Only the due rows are locked, so reads of a family stay lock-free in the common case.
    """
    base = (
        select(FamilyBinding, Person)
        .join(Person, Person.id == FamilyBinding.member_person_id)
        .where(bindings_of(person_id), FamilyBinding.status.in_(LIVE_STATUSES))
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
        settle(uow, b, member, now)


def sweep(uow: UnitOfWork, *, now: datetime | None = None) -> dict[str, int]:
    """Record every clock-driven change of a binding now due (expiries, wards turning 17).

    Reads already apply these lazily; the sweep only makes the audit trail timely for bindings
    nobody looks at. Returns how many bindings moved to each status.
    """
    now = now or clock.now()
    rows = uow.session.execute(
        select(FamilyBinding, Person)
        .join(Person, Person.id == FamilyBinding.member_person_id)
        .where(
            ((FamilyBinding.status == "pending") & (FamilyBinding.expires_at <= now))
            | (
                (FamilyBinding.status == "active")
                & (FamilyBinding.basis == "guardian")
                & FamilyBinding.consented_at.is_(None)
            )
        )
        .order_by(FamilyBinding.id)
        .with_for_update(of=FamilyBinding, key_share=True, skip_locked=True)
    ).all()
    moved: dict[str, int] = {}
    for b, member in rows:
        before = b.status
        settle(uow, b, member, now)
        if b.status != before:
            moved[b.status] = moved.get(b.status, 0) + 1
    return moved
