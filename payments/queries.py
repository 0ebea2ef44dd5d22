"""Prebuilt statements of the pay hot path and their dialect branches (infrastructure, no rules).

Built once at import: pay runs them without constructing SQL per request. The rules that use them
live in settlement.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Row, bindparam, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from family_accounts import acting as family
from supervision import checks as supervision
from yibao.db import UnitOfWork
from yibao.prepared import Prepared, PreparedRows
from yibao.registry import services as registry

from . import ledger
from .models import Account, OrderItem, PaymentOrder, TraceCodeSettlement, WebhookEndpoint


def _order_for_pay_stmt() -> Any:
    # Core tables only (no mapped classes): the statement never goes through the ORM's execution.
    orders, items = PaymentOrder.__table__, OrderItem.__table__.c
    accounts, endpoints = Account.__table__.c, WebhookEndpoint.__table__.c
    has_endpoint = select(endpoints.institution_id).where(endpoints.institution_id == orders.c.institution_id)
    clearing = select(accounts.id).where(accounts.institution_id == orders.c.institution_id)
    cash = select(accounts.id).where(accounts.system_name == ledger.CASH)
    return (
        select(
            *orders.c,
            items.trace_codes,
            has_endpoint.exists().label("has_endpoint"),
            clearing.scalar_subquery().label("clearing_id"),
            cash.scalar_subquery().label("cash_id"),
            items.drug_code,
            items.quantity,
            registry.person_status_locked_of(orders.c.payer_person_id).label("payer_status"),
            family.may_have_mutual_aid_holders(orders.c.payer_person_id).label("may_have_holders"),
            supervision.rules_version_column(),
        )
        .select_from(orders.outerjoin(OrderItem.__table__, items.order_id == orders.c.id))
        .where(orders.c.pay_order_id == bindparam("pay_order_id"))
        .order_by(items.line_no)
        .with_for_update(of=orders)
    )


_ORDER_FOR_PAY = Prepared(_order_for_pay_stmt(), ("pay_order_id",))
_ORDERS = PaymentOrder.__table__
# What pay sets on the order (updated_at included: its onupdate is not applied on the cursor).
MARK_PAID_COLUMNS = (
    "status",
    "account_pay_fen",
    "mutual_aid_pay_fen",
    "cash_pay_fen",
    "paid_at",
    "updated_at",
)
_MARK_PAID = Prepared(
    _ORDERS.update().where(_ORDERS.c.id == bindparam("order_pk")), ("order_pk", *MARK_PAID_COLUMNS)
)
_SETTLEMENTS = TraceCodeSettlement.__table__
_SETTLE_CODES = {
    name: PreparedRows(
        lambda values, insert=insert: (
            insert(_SETTLEMENTS)
            .values(values)
            .on_conflict_do_nothing(index_elements=["code"], index_where=_SETTLEMENTS.c.released_at.is_(None))
            .returning(_SETTLEMENTS.c.id)
        ),
        _SETTLEMENTS,
        ("code", "order_id", "settled_at"),
    )
    for name, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


def order_for_pay_rows(uow: UnitOfWork, pay_order_id: str) -> Sequence[Row]:
    """One round trip: the order's columns (its row locked: FOR UPDATE OF payment_orders) joined with
    its items' traceability codes in line order, whether its institution has a webhook endpoint, the
    clearing and cash account ids, the payer's status (share-locked, registry.person_status_locked_of)
    and whether the payer may have mutual-aid holders (family.may_have_mutual_aid_holders), and the
    enabled supervision rules' version (supervision.rules_version_column). One row per item: the
    order's columns by name, then trace_codes, has_endpoint, clearing_id, cash_id, drug_code, quantity,
    payer_status, may_have_holders, rules_version."""
    return _ORDER_FOR_PAY.execute(uow, {"pay_order_id": pay_order_id})


def mark_paid(uow: UnitOfWork, order_pk: int, values: dict[str, Any]) -> None:
    """One UPDATE of the order row (instead of an ORM flush): exactly the MARK_PAID_COLUMNS."""
    if values.keys() != set(MARK_PAID_COLUMNS):
        raise ValueError(f"mark_paid sets exactly {MARK_PAID_COLUMNS}, not {sorted(values)}")
    _MARK_PAID.run(uow, {"order_pk": order_pk, **values})


def insert_settlements(uow: UnitOfWork, keys: Sequence[str], order_id: int, now: datetime) -> int:
    """INSERT ... ON CONFLICT DO NOTHING of one active settlement per code: how many were inserted.

    One multi-row INSERT for all codes (16 codes a statement). A concurrent settlement of the same
    code waits on the partial unique index, then is skipped here.
    """
    rows = [{"code": k, "order_id": order_id, "settled_at": now} for k in keys]
    return len(_SETTLE_CODES[uow.dialect].execute(uow, rows))


_ADVISORY_LOCK = Prepared(
    text("SELECT pg_advisory_xact_lock(:lock_id)").bindparams(bindparam("lock_id", type_=BigInteger)),
    ("lock_id",),
)


def lock_idempotency_key(uow: UnitOfWork, institution_id: int, key: str) -> None:
    """Serialize the claims of one (institution, key) until the transaction ends.

    PostgreSQL: a transaction-level advisory lock on a 64-bit hash of the pair. SQLite: nothing to do,
    the write transaction (BEGIN IMMEDIATE) already holds the database's single write lock.
    """
    if uow.dialect != "postgresql":
        return
    digest = hashlib.sha256(f"{institution_id}:{key}".encode()).digest()
    _ADVISORY_LOCK.run(uow, {"lock_id": int.from_bytes(digest[:8], "big", signed=True)})
