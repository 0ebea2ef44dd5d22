"""Benefit policies in the database: versioned writes, the current version, the nearest-ancestor lookup.

No Flask here. The document format and its validation are in policy.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
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
