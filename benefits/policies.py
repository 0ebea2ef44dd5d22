"""Benefit policies in the database: versioned writes, the current version, the nearest-ancestor lookup,
and the per-worker cache of parsed versions.

No Flask here. The document format and its validation are in policy.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, String, bindparam, func, select
from sqlalchemy.exc import IntegrityError

from yibao.db import UnitOfWork
from yibao.errors import AppError

from . import errors  # noqa: F401  (registers the codes)
from . import policy as pol
from .models import BenefitPolicy


@dataclass(frozen=True)
class Found:
    """The policy that applies and where it came from."""

    row: BenefitPolicy
    policy: pol.Policy


def put_policy(
    uow: UnitOfWork, *, region: str, insurance_type: str, year: int, document: Any
) -> BenefitPolicy:
    """Store `document` as the next version (replacing the whole policy; older versions stay).

    Raises: VALIDATION_FAILED (naming the first bad field).
    """
    try:
        pol.parse(document)
    except pol.PolicyInvalid as exc:
        raise AppError("VALIDATION_FAILED", errors={exc.field: [exc.message]}) from exc
    for _ in range(5):  # two concurrent PUTs: the loser takes the next number
        last = uow.session.scalar(
            select(func.max(BenefitPolicy.version)).where(
                BenefitPolicy.region == region,
                BenefitPolicy.insurance_type == insurance_type,
                BenefitPolicy.year == year,
            )
        )
        row = BenefitPolicy(
            region=region,
            insurance_type=insurance_type,
            year=year,
            version=(last or 0) + 1,
            document=document,
        )
        try:
            with uow.session.begin_nested():
                uow.session.add(row)
            return row
        except IntegrityError:
            continue
    raise AppError("DATABASE_UNAVAILABLE")


def current_row(uow: UnitOfWork, *, region: str, insurance_type: str, year: int) -> BenefitPolicy | None:
    return uow.session.scalar(
        select(BenefitPolicy)
        .where(
            BenefitPolicy.region == region,
            BenefitPolicy.insurance_type == insurance_type,
            BenefitPolicy.year == year,
        )
        .order_by(BenefitPolicy.version.desc())
        .limit(1)
    )


def get_policy(uow: UnitOfWork, *, region: str, insurance_type: str, year: int) -> BenefitPolicy:
    """The current version of exactly this region's policy.

    Raises: BENEFIT_POLICY_NOT_FOUND.
    """
    row = current_row(uow, region=region, insurance_type=insurance_type, year=year)
    if row is None:
        raise AppError("BENEFIT_POLICY_NOT_FOUND")
    return row


def applicable(uow: UnitOfWork, *, insured_region: str, insurance_type: str, year: int) -> Found:
    """The policy applied to a person: the first that exists of code, code[:4]+"00", code[:2]+"0000".

    Raises: BENEFIT_POLICY_MISSING.
    """
    for code in pol.candidate_regions(insured_region):
        row = current_row(uow, region=code, insurance_type=insurance_type, year=year)
        if row is not None:
            return Found(row, pol.parse(row.document, version=row.version))
    raise AppError("BENEFIT_POLICY_MISSING")


def by_id(uow: UnitOfWork, policy_id: int) -> pol.Policy:
    row = uow.session.get(BenefitPolicy, policy_id)
    assert row is not None
    return pol.parse(row.document, version=row.version)


# A stored version never changes: the database refuses any UPDATE of a benefit_policies row
# (migration b0002). So a version once parsed is what every later read of it would parse, and each
# worker keeps it. The key carries created_at besides (id, version): a database emptied and refilled
# (TRUNCATE ... RESTART IDENTITY, a restored copy) may reuse an id and a version number, never the
# instant the row was written.
_PARSED: dict[tuple[int, int, datetime], pol.Policy] = {}
_PARSED_MAX = 1024  # versions of regions x insurance types x years: far more than a province has
_POLICIES = BenefitPolicy.__table__
_DOCUMENT = select(_POLICIES.c.document).where(_POLICIES.c.id == bindparam("policy_id"))


def parsed(uow: UnitOfWork, policy_id: int, version: int, created_at: datetime) -> pol.Policy:
    """The parsed policy of this stored version: from the worker's cache, or read (one statement) once."""
    key = (policy_id, version, created_at)
    found = _PARSED.get(key)
    if found is None:
        document = uow.core().execute(_DOCUMENT, {"policy_id": policy_id}).scalar_one()
        found = pol.parse(document, version=version)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = found
    return found


def applicable_id_of(
    insured_region: ColumnElement[str], insurance_type: ColumnElement[str], year: ColumnElement[int]
) -> ScalarSelect[int]:
    """`applicable`'s choice as a subquery of the caller's statement: the id of the current version of
    the first region of candidate_regions(insured_region) that has a policy (NULL: none).

    The candidates are the code with ever more of its trailing digits zeroed (code, code[:4]+"00",
    code[:2]+"0000", six-digit codes), so the nearest one is the greatest: ORDER BY region DESC (an
    ORDER BY naming the outer row's columns is not something SQLite resolves in a correlated subquery).
    """
    candidate = _POLICIES.alias("candidate")  # the caller may join benefit_policies on this id
    c = candidate.c
    parent = func.substr(insured_region, 1, 4, type_=String).concat("00")
    province = func.substr(insured_region, 1, 2, type_=String).concat("0000")
    return (
        select(c.id)
        .where(
            c.region.in_([insured_region, parent, province]),
            c.insurance_type == insurance_type,
            c.year == year,
        )
        .order_by(c.region.desc(), c.version.desc())
        .limit(1)
        .correlate_except(candidate)
        .scalar_subquery()
    )
