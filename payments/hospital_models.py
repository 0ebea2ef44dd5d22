"""The hospital part of an order (issue 15): its lines with categories, the split and what it counted."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from yibao.db import Base, BigId, UTCDateTime, utcnow


class HospitalSettlement(Base):
    """One row per hospital order. `split` is the provisional split until pay, then the final one;
    `counted` is what pay added to the person's running totals (a refund gives back exactly that)."""

    __tablename__ = "hospital_settlements"
    __table_args__ = (
        CheckConstraint("med_type IN ('outpatient', 'inpatient')", name="med_type"),
        Index("ix_hospital_settlements_day", "person_id", "institution_id", "day"),
    )

    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("payment_orders.id"), primary_key=True)
    med_type: Mapped[str] = mapped_column(String(16))
    year: Mapped[int] = mapped_column(Integer)
    policy_id: Mapped[int] = mapped_column(Integer)
    policy_version: Mapped[int] = mapped_column(Integer)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    split: Mapped[dict[str, Any]] = mapped_column(JSON)
    counted: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)
    day: Mapped[date] = mapped_column(Date)  # Beijing day of pay (of placement until then)
    institution_id: Mapped[int] = mapped_column(Integer)
    person_id: Mapped[int] = mapped_column(Integer)
    counts_for_day: Mapped[bool] = mapped_column(Boolean, default=False)  # paid outpatient, not refunded
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
