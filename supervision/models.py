"""Supervision tables: the rules, their audit trail, what supervision counts, and the alerts.

Supervision never reads another domain's tables: what it counts (units sold per person and code,
accepted scans per person and prefecture) it records itself, through checks.record_sale /
record_refund / record_accepted_scan, inside the caller's transaction. It refers to the shell's
persons and institutions only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from yibao.db import Base, BigId, UTCDateTime, utcnow

KINDS = ("quantity_limit", "repeat_purchase", "identity_velocity")
ORDER_KINDS = ("quantity_limit", "repeat_purchase")
SCAN_KINDS = ("identity_velocity",)
ACTIONS = ("block", "warn")
STAGES = ("create", "pay", "verify")


class Rule(Base):
    """An operator's rule. `drug_code` repeats params.drug_code (order kinds) so the hot path finds the
    rules of an order's codes with one indexed statement instead of reading JSON."""

    __tablename__ = "supervision_rules"
    __table_args__ = (
        CheckConstraint("kind IN ('quantity_limit', 'repeat_purchase', 'identity_velocity')", name="kind"),
        CheckConstraint("action IN ('block', 'warn')", name="action"),
        CheckConstraint("(kind = 'identity_velocity') = (drug_code IS NULL)", name="drug_code"),
        Index("ix_supervision_rules_enabled_kind_drug_code", "enabled", "kind", "drug_code"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    drug_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(8))
    description: Mapped[str | None] = mapped_column(String(256), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RulesState(Base):
    """The enabled rules' version: one row (id 1), created by migration s0002 and bumped by database
    triggers on every change of supervision_rules (admin API, CLI or raw SQL alike). The hot paths read
    it in their first statement; a worker's cached rules are reloaded when it differs (rule_cache.py)."""

    __tablename__ = "supervision_rules_state"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class RuleChange(Base):
    """Append-only audit of every rule change: who, when, the rule before and after."""

    __tablename__ = "supervision_rule_changes"
    __table_args__ = (
        CheckConstraint("change IN ('created', 'enabled', 'disabled')", name="change"),
        Index("ix_supervision_rule_changes_rule_id_id", "rule_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("supervision_rules.id", ondelete="RESTRICT"))
    change: Mapped[str] = mapped_column(String(16))
    operator: Mapped[str] = mapped_column(String(80))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PersonLock(Base):
    """One row per supervised person, locked (upsert) while an order of theirs is checked at pay and a
    scan of theirs at verification: two counters cannot each sell the last allowed box."""

    __tablename__ = "supervision_persons"

    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="RESTRICT"), primary_key=True)
    locked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


COVERED = ("institution_id", "quantity", "released")  # what a window's sum reads of a sale


class Sale(Base):
    """Units of one code sold to a person in one paid order (one row per order and code).

    `released` counts the units refunds gave back; the counted units are quantity - released, at the
    time of the sale (sold_at), so a refund takes its units out of exactly the windows that counted them.
    """

    __tablename__ = "supervision_sales"
    __table_args__ = (
        UniqueConstraint("order_ref", "code"),
        CheckConstraint("quantity > 0 AND released >= 0 AND released <= quantity", name="units"),
        # The range every order rule reads (the rows of a window's first, partial day): one person, one
        # code, sold after the window's start. Covering since migration s0003, so the sum is an
        # index-only scan: INCLUDE on PostgreSQL (it needs the visibility map, kept by autovacuum), the
        # same columns appended to the key on SQLite (which has no INCLUDE; s0003 creates it so).
        Index(
            "ix_supervision_sales_person_code_sold_at",
            "person_id",
            "code",
            "sold_at",
            postgresql_include=list(COVERED),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="RESTRICT"))
    code: Mapped[str] = mapped_column(String(64))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id", ondelete="RESTRICT"))
    order_ref: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    released: Mapped[int] = mapped_column(Integer, default=0)
    sold_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SaleDay(Base):
    """Still-counted units of one code sold to a person by one institution on one UTC day: the sums of
    supervision_sales' quantity - released per (person_id, code, day, institution_id), kept by database
    triggers on every INSERT, UPDATE and DELETE of supervision_sales (migration s0003), in the writing
    statement's own transaction, whoever writes (record_sale, record_refund, raw SQL). A rule window
    reads its full days here and only its first, partial day from supervision_sales (queries.py), so
    its cost does not grow with the number of sales inside it. `day` is the day's 00:00 UTC."""

    __tablename__ = "supervision_sale_days"
    __table_args__ = (
        CheckConstraint("units >= 0", name="units"),
        {"sqlite_with_rowid": False},  # SQLite: the rows are the key's b-tree
    )

    person_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    units: Mapped[int] = mapped_column(Integer)


class Scan(Base):
    """An accepted scan of a person's code, by the prefecture (first four digits of the region)."""

    __tablename__ = "supervision_scans"
    __table_args__ = (
        # The range identity_velocity reads (prefecture included: answered from the index alone).
        Index("ix_supervision_scans_person_scanned_at", "person_id", "scanned_at", "prefecture"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="RESTRICT"))
    prefecture: Mapped[str] = mapped_column(String(4))
    scanned_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Alert(Base):
    """A rule broken (block) or noticed (warn): one per rule, order or scan, and stage."""

    __tablename__ = "supervision_alerts"
    __table_args__ = (
        UniqueConstraint("rule_id", "subject_ref", "stage"),
        CheckConstraint("action IN ('block', 'warn')", name="action"),
        CheckConstraint("stage IN ('create', 'pay', 'verify')", name="stage"),
        Index("ix_supervision_alerts_person_id_id", "person_id", "id"),
        Index("ix_supervision_alerts_institution_id_id", "institution_id", "id"),
        Index("ix_supervision_alerts_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("supervision_rules.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(8))
    stage: Mapped[str] = mapped_column(String(8))
    subject_ref: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="RESTRICT"))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id", ondelete="RESTRICT"))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
