"""A person's running totals per year (benefit_totals): read, lock, count a settlement, give one back."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from yibao.db import UnitOfWork, utcnow

from . import split as sp
from .models import BenefitTotals


def read(uow: UnitOfWork, person_id: int, year: int) -> BenefitTotals | None:
    return uow.session.scalar(
        select(BenefitTotals).where(BenefitTotals.person_id == person_id, BenefitTotals.year == year)
    )


def lock(uow: UnitOfWork, person_id: int, year: int) -> BenefitTotals:
    """The row, created on first use and locked (FOR UPDATE) until the unit of work ends.

    Every settlement and refund of the person takes this lock before the account locks, so two
    settlements of one person run one after the other and never pass a cap together.
    """
    stmt = (
        select(BenefitTotals)
        .where(BenefitTotals.person_id == person_id, BenefitTotals.year == year)
        .with_for_update()
    )
    row = uow.session.scalar(stmt)
    if row is None:
        try:
            with uow.session.begin_nested():
                uow.session.add(
                    BenefitTotals(person_id=person_id, year=year, **{f: 0 for f in sp.TOTAL_FIELDS})
                )
        except IntegrityError:
            pass  # a concurrent first settlement created it
        row = uow.session.scalar(stmt.execution_options(populate_existing=True))
    assert row is not None
    return row


def as_totals(row: BenefitTotals | None) -> sp.Totals:
    if row is None:
        return sp.Totals()
    return sp.Totals(**{f: getattr(row, f) for f in sp.TOTAL_FIELDS})


def add(row: BenefitTotals, counted: Mapping[str, int], *, deductible: tuple[str, int], sign: int) -> None:
    """Count (sign +1) or give back (sign -1) what a settlement counted."""
    for f in sp.TOTAL_FIELDS:
        setattr(row, f, getattr(row, f) + sign * counted.get(f, 0))
    med_type, fen = deductible
    attr = f"deductible_{med_type}_fen"
    setattr(row, attr, getattr(row, attr) + sign * fen)
    row.settlements += sign
    row.updated_at = utcnow()
