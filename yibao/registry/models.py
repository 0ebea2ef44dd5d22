"""Registry tables: insured persons, cross-region filings, designated institutions."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from yibao.db import Base, UTCDateTime, utcnow

INSURANCE_TYPES = ("employee", "resident")
PERSON_STATUSES = ("active", "suspended")
INSTITUTION_KINDS = ("pharmacy", "hospital", "online_pharmacy")
INSTITUTION_STATUSES = ("active", "disabled")
INSTITUTION_LEVELS = ("primary", "secondary", "tertiary")
ASSISTANCE_CATEGORIES = ("none", "dibao", "tekun", "low_income")  # 最低生活保障, 特困供养, 低收入
BUSINESS_TYPES = {
    "01101": "registration",
    "01201": "consultation",
    "01301": "settlement",
    "01302": "collect medicine",
    "02121": "pharmacy purchase",
    "03131": "online identity check",
}
SERVICES = (*BUSINESS_TYPES, "online_otc")


def has_personal_account(insurance_type: str) -> bool:
    """Employee insurance (职工医保) has a personal account (个人账户); resident insurance has none."""
    return insurance_type == "employee"


class Person(Base):
    """An insured person. Name and ID number are stored only encrypted."""

    __tablename__ = "persons"
    __table_args__ = (
        CheckConstraint("insurance_type IN ('employee', 'resident')", name="insurance_type"),
        CheckConstraint("status IN ('active', 'suspended')", name="status"),
        CheckConstraint(
            "opening_balance_fen >= 0 AND (insurance_type = 'employee' OR opening_balance_fen = 0)",
            name="opening_balance",
        ),
        CheckConstraint("insurance_type = 'employee' OR NOT retired", name="retired_employee"),
        CheckConstraint(
            "assistance_category IN ('none', 'dibao', 'tekun', 'low_income')", name="assistance_category"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    psn_no: Mapped[str] = mapped_column(String(32), unique=True)
    id_index: Mapped[str] = mapped_column(String(64), unique=True)  # HMAC blind index of the ID number
    id_number_enc: Mapped[str] = mapped_column(String(255))
    name_enc: Mapped[str] = mapped_column(String(255))
    name_index: Mapped[str] = mapped_column(String(64))
    id_number_masked: Mapped[str] = mapped_column(String(32))
    name_masked: Mapped[str] = mapped_column(String(64))
    birth_date: Mapped[date] = mapped_column(Date)
    insurance_type: Mapped[str] = mapped_column(String(16))
    insured_region: Mapped[str] = mapped_column(String(6))
    status: Mapped[str] = mapped_column(String(16), default="active")
    opening_balance_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    retired: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # employees only
    assistance_category: Mapped[str] = mapped_column(String(16), default="none", server_default="none")
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def has_personal_account(self) -> bool:
        return has_personal_account(self.insurance_type)


class CrossRegionFiling(Base):
    """异地就医备案: lets a person settle in a region other than the insured one."""

    __tablename__ = "cross_region_filings"
    __table_args__ = (
        CheckConstraint("valid_until IS NULL OR valid_until >= valid_from", name="window"),
        Index("ix_cross_region_filings_person_region", "person_id", "region"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    filing_no: Mapped[str] = mapped_column(String(32), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="RESTRICT"))
    region: Mapped[str] = mapped_column(String(6))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Institution(Base):
    """A designated pharmacy, hospital or online pharmacy and its API credentials."""

    __tablename__ = "institutions"
    __table_args__ = (
        CheckConstraint("kind IN ('pharmacy', 'hospital', 'online_pharmacy')", name="kind"),
        CheckConstraint("status IN ('active', 'disabled')", name="status"),  # INSTITUTION_STATUSES
        CheckConstraint("level IN ('primary', 'secondary', 'tertiary')", name="level"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    region: Mapped[str] = mapped_column(String(6))
    services: Mapped[list[str]] = mapped_column(JSON)
    level: Mapped[str] = mapped_column(String(16), default="secondary", server_default="secondary")
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_enc: Mapped[str] = mapped_column(String(255))  # AES-GCM: HMAC verification needs the secret
    webhook_url: Mapped[str | None] = mapped_column(String(512), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    secret_rotated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def designated_for(self, service: str) -> bool:
        return self.status == "active" and service in (self.services or [])
