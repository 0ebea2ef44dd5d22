"""Benefits tables: versioned benefit policies and each person's running totals per year."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from yibao.db import Base, UTCDateTime, utcnow


class BenefitPolicy(Base):
    """One version of the policy of an insured (pooling) region, insurance type and calendar year.

    A PUT adds a row (version + 1); the current policy is the highest version. Rows are never changed,
    so a settlement's recorded version keeps meaning what it meant.
    """

    __tablename__ = "benefit_policies"
    __table_args__ = (
        UniqueConstraint("region", "insurance_type", "year", "version", name="version"),
        CheckConstraint("insurance_type IN ('employee', 'resident')", name="insurance_type"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    region: Mapped[str] = mapped_column(String(6))
    insurance_type: Mapped[str] = mapped_column(String(16))
    year: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BenefitTotals(Base):
    """A person's running totals for one year: what the funds paid and the inpatient shares counted.

    Locked (SELECT ... FOR UPDATE) by every settlement and refund of the person, so concurrent
    settlements never pass a cap; one row per person and year, so the cost never grows with history.
    """

    __tablename__ = "benefit_totals"
    __table_args__ = (
        UniqueConstraint("person_id", "year", name="person_year"),
        CheckConstraint(
            "hifp_outpatient_fen >= 0 AND hifp_inpatient_fen >= 0 AND hifmi_fen >= 0 AND maf_fen >= 0"
            " AND inpatient_share_fen >= 0",
            name="non_negative",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    year: Mapped[int] = mapped_column(Integer)
    hifp_outpatient_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    hifp_inpatient_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    hifmi_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    maf_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    inpatient_share_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    deductible_outpatient_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    deductible_inpatient_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    settlements: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
