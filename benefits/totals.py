"""A person's running totals per year (benefit_totals): read, lock, count a settlement, give one back.

Two ways to the same locked row: `lock` (the ORM row, for refunds) and `lock_values` (one prebuilt upsert
returning the columns, for the pay hot path); `added` is the arithmetic both count with.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from yibao.db import UnitOfWork, utcnow
from yibao.prepared import Prepared

from . import split as sp
from .models import BenefitTotals

COUNTED_COLUMNS = (
    *sp.TOTAL_FIELDS,
    "deductible_outpatient_fen",
    "deductible_inpatient_fen",
    "settlements",
)


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


# Prebuilt: the pay hot path's get-or-create-and-lock in one statement. The conflict branch's UPDATE
# (of updated_at, written again when the settlement is counted) locks the existing row exactly as
# SELECT ... FOR UPDATE does, and on PostgreSQL waits for a concurrent holder of the lock, then returns
# the row as that holder committed it; a first settlement inserts it (a concurrent first one waits on
# the unique (person_id, year) and then takes the conflict branch).
_TOTALS = BenefitTotals.__table__
_LOCK_VALUES = {
    name: Prepared(
        insert(_TOTALS)
        .values(
            person_id=bindparam("person_id"),
            year=bindparam("year"),
            updated_at=bindparam("now"),
            **{c: 0 for c in COUNTED_COLUMNS},
        )
        .on_conflict_do_update(index_elements=["person_id", "year"], set_={"updated_at": bindparam("now")})
        .returning(_TOTALS.c.id, *(_TOTALS.c[c] for c in COUNTED_COLUMNS)),
        ("person_id", "year", "now"),
    )
    for name, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
# The count of a settlement, every value a bind named totals_<column> (the statement may be one part of a
# caller's larger statement: hospital_pay's PostgreSQL CTE).
WRITE = (
    _TOTALS.update()
    .where(_TOTALS.c.id == bindparam("totals_id"))
    .values({c: bindparam(f"totals_{c}") for c in (*COUNTED_COLUMNS, "updated_at")})
)
WRITE_PARAMS = ("totals_id", *(f"totals_{c}" for c in (*COUNTED_COLUMNS, "updated_at")))


def lock_values(uow: UnitOfWork, person_id: int, year: int, now: datetime) -> Row:
    """`lock` in one round trip, as columns: the row's id and COUNTED_COLUMNS, the row locked until the
    unit of work ends (created on first use)."""
    params = {"person_id": person_id, "year": year, "now": now}
    (row,) = _LOCK_VALUES[uow.dialect].execute(uow, params)
    return row


def write_params(totals_id: int, values: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """WRITE's parameters: the locked row's id and the values `added` computed."""
    return {"totals_id": totals_id, "totals_updated_at": now, **{f"totals_{c}": v for c, v in values.items()}}


def as_totals(row: Any) -> sp.Totals:
    """The split's view of a totals row (an ORM row or a result row; None: nothing counted yet)."""
    if row is None:
        return sp.Totals()
    return sp.Totals(**{f: getattr(row, f) for f in sp.TOTAL_FIELDS})


def added(row: Any, counted: Mapping[str, int], *, deductible: tuple[str, int], sign: int) -> dict[str, int]:
    """COUNTED_COLUMNS after counting (sign +1) or giving back (sign -1) what a settlement counted."""
    out = {f: getattr(row, f) + sign * counted.get(f, 0) for f in sp.TOTAL_FIELDS}
    med_type, fen = deductible
    attr = f"deductible_{med_type}_fen"
    for other in ("deductible_outpatient_fen", "deductible_inpatient_fen"):
        out[other] = getattr(row, other) + (sign * fen if other == attr else 0)
    out["settlements"] = row.settlements + sign
    return out


def add(row: BenefitTotals, counted: Mapping[str, int], *, deductible: tuple[str, int], sign: int) -> None:
    """Count (sign +1) or give back (sign -1) what a settlement counted, on the ORM row."""
    for name, value in added(row, counted, deductible=deductible, sign=sign).items():
        setattr(row, name, value)
    row.updated_at = utcnow()
