"""Prebuilt statements and row loaders the family rules share (no rules here).

The statements `pay` and every delegated request run are built once at import: building a
SQLAlchemy select cost more CPU than executing it.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Exists, bindparam, or_, select

from yibao.db import UnitOfWork
from yibao.errors import AppError
from yibao.registry.models import Person

from .models import LIVE_STATUSES, FamilyBinding, MutualAidFiling

# The holders whose personal accounts pay for a member: ACTIVE filings of active employees, oldest
# first. FOR SHARE on PostgreSQL (a withdrawal waits for a payment that already read the filing).
HOLDERS = (
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


def active_filings_of(member_person_id: ColumnElement[int]) -> Exists:
    """EXISTS an active filing for the member: the condition HOLDERS starts from (a superset of it)."""
    filings = MutualAidFiling.__table__.c  # Core columns: the caller's statement stays out of the ORM
    return (
        select(filings.id)
        .where(filings.member_person_id == member_person_id, filings.status == "active")
        .exists()
    )


# The live binding of an actor for a member, FOR SHARE: an ending waits for the delegated action.
LIVE_BINDING = (
    select(FamilyBinding)
    .where(
        FamilyBinding.binder_person_id == bindparam("binder_person_id"),
        FamilyBinding.member_person_id == bindparam("member_person_id"),
        FamilyBinding.status.in_(LIVE_STATUSES),
    )
    .with_for_update(read=True)
)

# A person's row id by psn_no, nothing else: a filing looks it up the same way whether or not it exists.
PERSON_ID_BY_PSN_NO = select(Person.id).where(Person.psn_no == bindparam("psn_no"))


def lock_person(uow: UnitOfWork, person_id: int) -> Person:
    """Lock a person's row: serializes every change to that person's bindings and filings (PostgreSQL)."""
    # FOR NO KEY UPDATE: serializes writers without blocking other tables' foreign-key checks on the row.
    person = uow.session.scalar(select(Person).where(Person.id == person_id).with_for_update(key_share=True))
    if person is None:  # an authenticated caller always exists
        raise AppError("NOT_PERMITTED")
    return person


def people(uow: UnitOfWork, ids: set[int | None]) -> dict[int, Person]:
    """Load persons by id in one query (None ids are skipped)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {p.id: p for p in uow.session.scalars(select(Person).where(Person.id.in_(wanted)))}


def bindings_of(person_id: int) -> ColumnElement[bool]:
    """Where clause: bindings in which the person is binder or member."""
    return or_(FamilyBinding.binder_person_id == person_id, FamilyBinding.member_person_id == person_id)


def filings_of(person_id: int) -> ColumnElement[bool]:
    """Where clause: filings in which the person is holder or (known) member."""
    return or_(MutualAidFiling.holder_person_id == person_id, MutualAidFiling.member_person_id == person_id)
