"""Payments tables: ledger (accounts, transactions, entries), grants, orders, refunds, trace codes,
idempotency keys, webhook endpoints and the webhook outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from yibao.db import Base, BigId, UTCDateTime, utcnow

# BIGINT on PostgreSQL, INTEGER (the rowid alias, so autoincrement works) on SQLite.

ACCOUNT_KINDS = ("personal", "clearing", "funding", "cash")
ORDER_STATUSES = ("created", "paid", "partially_refunded", "refunded", "cancelled")


class Account(Base):
    """A ledger account. Only personal accounts keep a balance column (the hot path needs it)."""

    __tablename__ = "pay_accounts"
    __table_args__ = (
        CheckConstraint("kind IN ('personal', 'clearing', 'funding', 'cash')", name="kind"),
        # A personal account can never go below zero, whatever the code does.
        CheckConstraint("kind <> 'personal' OR balance_fen >= 0", name="personal_non_negative"),
        CheckConstraint(
            "(kind = 'personal') = (person_id IS NOT NULL)"
            " AND (kind = 'clearing') = (institution_id IS NOT NULL)",
            name="owner",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), unique=True, nullable=True)
    institution_id: Mapped[int | None] = mapped_column(
        ForeignKey("institutions.id"), unique=True, nullable=True
    )
    system_name: Mapped[str | None] = mapped_column(String(32), unique=True, nullable=True)
    balance_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerTransaction(Base):
    """One posting; its entries sum to zero (database-enforced). Append-only once sealed."""

    __tablename__ = "pay_transactions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # opening|contribution|payment|refund
    natural_key: Mapped[str | None] = mapped_column(String(96), unique=True, nullable=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("payment_orders.id"), nullable=True, index=True)
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("payment_refunds.id"), nullable=True)
    memo: Mapped[str | None] = mapped_column(String(128), nullable=True)
    sealed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Entry(Base):
    """One leg: signed fen on one account (negative = money leaves the account)."""

    __tablename__ = "pay_entries"
    __table_args__ = (Index("ix_pay_entries_account_id_id", "account_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("pay_transactions.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("pay_accounts.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaymentGrant(Base):
    """A single-use right to pay: a user's pay_auth_no, or an ec_token once an order quoted it."""

    __tablename__ = "pay_grants"
    __table_args__ = (
        CheckConstraint("source IN ('pay_auth', 'ec_token')", name="source"),
        CheckConstraint("purpose IN ('online_otc', 'counter')", name="purpose"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grant_key: Mapped[str] = mapped_column(String(64), unique=True)  # pay_auth_no, or sha256 of the ec_token
    source: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))  # the payer (account holder)
    actor_person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaymentOrder(Base):
    """A payment order and its split; `status` moves only along payments.orders.TRANSITIONS."""

    __tablename__ = "payment_orders"
    __table_args__ = (
        UniqueConstraint("institution_id", "merchant_order_no"),
        CheckConstraint(
            "status IN ('created', 'paid', 'partially_refunded', 'refunded', 'cancelled')", name="status"
        ),
        CheckConstraint(
            "total_fen = drug_fen + delivery_fee_fen"
            " AND total_fen = fund_pay_fen + account_pay_fen + mutual_aid_pay_fen + cash_pay_fen",
            name="split_sums",
        ),
        CheckConstraint("refunded_fen >= 0 AND refunded_fen <= total_fen", name="refund_bound"),
        Index("ix_payment_orders_institution_paid", "institution_id", "paid_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    pay_order_id: Mapped[str] = mapped_column(String(40), unique=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    payer_person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    actor_person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), nullable=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("pay_grants.id"))
    purpose: Mapped[str] = mapped_column(String(16))
    merchant_order_no: Mapped[str] = mapped_column(String(64))
    account_only: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(24), default="created")
    drug_fen: Mapped[int] = mapped_column(BigInteger)
    delivery_fee_fen: Mapped[int] = mapped_column(BigInteger)
    total_fen: Mapped[int] = mapped_column(BigInteger)
    account_pay_fen: Mapped[int] = mapped_column(BigInteger)
    mutual_aid_pay_fen: Mapped[int] = mapped_column(BigInteger)
    cash_pay_fen: Mapped[int] = mapped_column(BigInteger)
    # Hospital settlements (issue 15, payments/hospital.py): what the funds paid; null med_type = v1 order.
    fund_pay_fen: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    med_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    account_refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    mutual_aid_refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    cash_refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OrderItem(Base):
    """One drug line of an order; trace codes are kept as a JSON list in unit order."""

    __tablename__ = "payment_order_items"
    __table_args__ = (UniqueConstraint("order_id", "line_no"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("payment_orders.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    drug_code: Mapped[str] = mapped_column(String(64))
    drug_name: Mapped[str] = mapped_column(String(128))
    otc: Mapped[bool] = mapped_column(Boolean)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_fen: Mapped[int] = mapped_column(BigInteger)
    trace_codes: Mapped[list[str]] = mapped_column(JSON, default=list)


class Refund(Base):
    """A full or partial refund and how it was returned."""

    __tablename__ = "payment_refunds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    refund_id: Mapped[str] = mapped_column(String(40), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("payment_orders.id"), index=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    account_refund_fen: Mapped[int] = mapped_column(BigInteger)
    mutual_aid_refund_fen: Mapped[int] = mapped_column(BigInteger)
    cash_refund_fen: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(256))
    released_trace_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="succeeded")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class TraceCodeSettlement(Base):
    """A traceability code settled by an order; at most one active row per code, system-wide."""

    __tablename__ = "trace_code_settlements"
    __table_args__ = (
        Index(
            "uq_trace_code_settlements_active",
            "code",
            unique=True,
            sqlite_where=text("released_at IS NULL"),
            postgresql_where=text("released_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(96))
    order_id: Mapped[int] = mapped_column(ForeignKey("payment_orders.id"), index=True)
    settled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    released_by_refund_id: Mapped[int | None] = mapped_column(ForeignKey("payment_refunds.id"), nullable=True)


class IdempotencyKey(Base):
    """A claimed Idempotency-Key of one institution, its request hash and the stored response.

    period_start is the first instant of the UTC month of the first claim: the partition key on
    PostgreSQL (primary key (id, period_start)), so the unique key holds per month and
    payments/idempotency.py looks in the neighbouring month near a boundary (payments/retention.py).
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint(
            "institution_id", "key", "period_start", name="uq_idempotency_keys_institution_id_key"
        ),
        CheckConstraint("state IN ('in_progress', 'done')", name="state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    claim_token: Mapped[str] = mapped_column(String(32))
    locked_until: Mapped[datetime] = mapped_column(UTCDateTime)
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookEndpoint(Base):
    """Where and with which secret an institution receives webhooks."""

    __tablename__ = "webhook_endpoints"

    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), primary_key=True)
    url: Mapped[str] = mapped_column(String(512))
    secret_enc: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WebhookEvent(Base):
    """Outbox row written in the same transaction as the state change it reports.

    On PostgreSQL partitioned by month of created_at (primary key (id, created_at); event_id, random,
    unique with created_at); a partition with a pending event is never pruned (payments/retention.py).
    """

    __tablename__ = "webhook_events"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'delivered', 'dead')", name="state"),
        UniqueConstraint("event_id", "created_at", name="uq_webhook_events_event_id"),
        Index("ix_webhook_events_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    type: Mapped[str] = mapped_column(String(48))
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(512), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
