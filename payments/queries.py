"""Prebuilt statements of the pay hot path and their dialect branches (infrastructure, no rules).

Built once at import: pay runs them without constructing SQL per request. The rules that use them
live in settlement.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from yibao.db import UnitOfWork

from . import ledger
from .models import Account, OrderItem, PaymentOrder, TraceCodeSettlement, WebhookEndpoint


def _order_for_pay_stmt() -> Any:
    has_endpoint = (
        select(WebhookEndpoint.institution_id)
        .where(WebhookEndpoint.institution_id == PaymentOrder.institution_id)
        .exists()
    )
    clearing = (
        select(Account.id).where(Account.institution_id == PaymentOrder.institution_id).scalar_subquery()
    )
    cash = select(Account.id).where(Account.system_name == ledger.CASH).scalar_subquery()
    return (
        select(
            PaymentOrder,
            OrderItem.trace_codes,
            has_endpoint,
            clearing,
            cash,
            OrderItem.drug_code,
            OrderItem.quantity,
        )
        .outerjoin(OrderItem, OrderItem.order_id == PaymentOrder.id)
        .where(PaymentOrder.pay_order_id == bindparam("pay_order_id"))
        .order_by(OrderItem.line_no)
        .with_for_update(of=PaymentOrder)
    )


_ORDER_FOR_PAY = _order_for_pay_stmt()
_ORDERS = PaymentOrder.__table__
_MARK_PAID = _ORDERS.update().where(_ORDERS.c.id == bindparam("order_pk"))
_SETTLEMENTS = TraceCodeSettlement.__table__
_SETTLE_CODES = {
    name: insert(_SETTLEMENTS)
    .on_conflict_do_nothing(index_elements=["code"], index_where=_SETTLEMENTS.c.released_at.is_(None))
    .returning(_SETTLEMENTS.c.id)
    for name, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


def order_for_pay_rows(uow: UnitOfWork, pay_order_id: str) -> Sequence[Row]:
    """One round trip: the order (locked: FOR UPDATE OF payment_orders) joined with its items'
    traceability codes in line order, whether its institution has a webhook endpoint, and the
    clearing and cash account ids. One row per item: (order, trace_codes, has_endpoint, clearing, cash,
    drug_code, quantity)."""
    return uow.session.execute(_ORDER_FOR_PAY, {"pay_order_id": pay_order_id}).all()


def mark_paid(uow: UnitOfWork, order_pk: int, values: dict[str, Any]) -> None:
    """One UPDATE of the order row (instead of an ORM flush)."""
    uow.session.execute(_MARK_PAID, {"order_pk": order_pk, **values})


def insert_settlements(uow: UnitOfWork, keys: Sequence[str], order_id: int, now: datetime) -> int:
    """INSERT ... ON CONFLICT DO NOTHING of one active settlement per code: how many were inserted.

    One statement for all codes (insertmanyvalues batches the rows into one INSERT ... VALUES). A
    concurrent settlement of the same code waits on the partial unique index, then is skipped here.
    """
    rows = [{"code": k, "order_id": order_id, "settled_at": now} for k in keys]
    return len(uow.session.execute(_SETTLE_CODES[uow.dialect], rows).all())


_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:lock_id)")


def lock_idempotency_key(uow: UnitOfWork, institution_id: int, key: str) -> None:
    """Serialize the claims of one (institution, key) until the transaction ends.

    PostgreSQL: a transaction-level advisory lock on a 64-bit hash of the pair. SQLite: nothing to do,
    the write transaction (BEGIN IMMEDIATE) already holds the database's single write lock.
    """
    if uow.dialect != "postgresql":
        return
    digest = hashlib.sha256(f"{institution_id}:{key}".encode()).digest()
    uow.session.execute(_ADVISORY_LOCK, {"lock_id": int.from_bytes(digest[:8], "big", signed=True)})
