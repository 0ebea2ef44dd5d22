"""Family tables: bindings (亲情账户) with their audit trail, and mutual-aid filings (家庭共济)."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from yibao.db import Base, UTCDateTime, utcnow

MAX_MEMBERS = 5
LIVE_STATUSES = ("pending", "active")
BINDING_STATUSES = ("pending", "active", "declined", "ended", "expired")
LIVE_SQL = "status IN ('pending', 'active')"


class FamilyBinding(Base):
    """A binder may act for a member. `relationship` says what the member is to the binder.

    A live binding (pending or active) holds one of the binder's five numbered slots; the
    unique (binder, slot) pair and the slot range check make a sixth live binding impossible
    even if two requests raced past the application's count.
    """

    __tablename__ = "family_bindings"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'active', 'declined', 'ended', 'expired')", name="status"),
        CheckConstraint("basis IN ('consent', 'guardian')", name="basis"),
        CheckConstraint(
            f"({LIVE_SQL} AND slot BETWEEN 1 AND {MAX_MEMBERS}) OR (NOT ({LIVE_SQL}) AND slot IS NULL)",
            name="slot",
        ),
        CheckConstraint("binder_person_id <> member_person_id", name="not_self"),
        UniqueConstraint("binder_person_id", "slot", name="uq_family_bindings_binder_slot"),
        Index(
            "uq_family_bindings_live_pair",
            "binder_person_id",
            "member_person_id",
            unique=True,
            sqlite_where=text(LIVE_SQL),
            postgresql_where=text(LIVE_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    binding_no: Mapped[str] = mapped_column(String(32), unique=True)
    binder_person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    member_person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    relationship: Mapped[str] = mapped_column(String(24))
    basis: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    slot: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pending_reason: Mapped[str | None] = mapped_column(String(24), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    consented_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    consent_method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class BindingEvent(Base):
    """One change of a binding: who did what, when, and the status it left."""

    __tablename__ = "binding_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    binding_id: Mapped[int] = mapped_column(ForeignKey("family_bindings.id"), index=True)
    event: Mapped[str] = mapped_column(String(24))
    actor_role: Mapped[str] = mapped_column(String(16))  # binder | member | system
    actor_person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), nullable=True)
    status_after: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


FILING_STATUSES = ("pending", "active", "declined", "expired", "withdrawn")
FILING_LIVE_SQL = "status IN ('pending', 'active')"
# A withdrawn filing says which side ended it (the holder's offer, or the member's consent); no other does.
WITHDRAWN_BY_SQL = (
    "(status = 'withdrawn') = (withdrawn_by IS NOT NULL) AND withdrawn_by IN ('holder', 'member')"
)


class MutualAidFiling(Base):
    """The holder lets a close relative (the member) draw on the holder's personal account.

    A filing starts pending and lets money flow only once the member approved it from their own
    account (active). `member_psn_no` is what the holder typed; `member_person_id` is NULL when no
    insured person has that psn_no, and such a filing can never become active or declined.
    """

    __tablename__ = "mutual_aid_filings"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'active', 'declined', 'expired', 'withdrawn')", name="status"),
        CheckConstraint("holder_person_id <> member_person_id", name="not_self"),
        CheckConstraint(
            "member_person_id IS NOT NULL OR status IN ('pending', 'expired', 'withdrawn')",
            name="unknown_member_never_approved",
        ),
        CheckConstraint("status <> 'pending' OR expires_at IS NOT NULL", name="pending_expires"),
        CheckConstraint("status <> 'active' OR approved_at IS NOT NULL", name="active_approved"),
        CheckConstraint(WITHDRAWN_BY_SQL, name="withdrawn_by"),
        Index(
            "uq_mutual_aid_filings_live_pair",
            "holder_person_id",
            "member_person_id",
            unique=True,
            sqlite_where=text(FILING_LIVE_SQL),
            postgresql_where=text(FILING_LIVE_SQL),
        ),
        Index(
            "uq_mutual_aid_filings_live_psn_no",
            "holder_person_id",
            "member_psn_no",
            unique=True,
            sqlite_where=text(FILING_LIVE_SQL),
            postgresql_where=text(FILING_LIVE_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    filing_no: Mapped[str] = mapped_column(String(32), unique=True)
    holder_person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    member_person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), index=True, nullable=True)
    member_psn_no: Mapped[str] = mapped_column(String(32))
    relationship: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    declined_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    withdrawn_by: Mapped[str | None] = mapped_column(String(8), nullable=True)  # holder | member


def new_public_no(prefix: str) -> str:
    """An opaque public id (never the row id)."""
    return prefix + secrets.token_urlsafe(12)
