"""Statements and reconciliation: an institution's Beijing calendar day against the ledger, and the
whole-ledger checks operators run."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, select

from yibao import china_time
from yibao.db import UnitOfWork

from .models import Account, Entry, LedgerTransaction, PaymentOrder, Refund


def statement(uow: UnitOfWork, *, institution_id: int, day: date) -> dict[str, Any]:
    """Orders paid and refunds made on one Beijing calendar day, with the ledger's view of the same day."""
    # A pharmacy's business day is a Beijing date: a UTC day would cut it at 08:00 local time.
    start, end = china_time.day_bounds(day)
    o = PaymentOrder
    pay = uow.session.execute(
        select(
            func.count(o.id),
            func.coalesce(func.sum(o.total_fen), 0),
            func.coalesce(func.sum(o.account_pay_fen), 0),
            func.coalesce(func.sum(o.mutual_aid_pay_fen), 0),
            func.coalesce(func.sum(o.cash_pay_fen), 0),
        ).where(o.institution_id == institution_id, o.paid_at >= start, o.paid_at < end)
    ).one()
    r = Refund
    ref = uow.session.execute(
        select(
            func.count(r.id),
            func.coalesce(func.sum(r.amount_fen), 0),
            func.coalesce(func.sum(r.account_refund_fen - r.mutual_aid_refund_fen), 0),
            func.coalesce(func.sum(r.mutual_aid_refund_fen), 0),
            func.coalesce(func.sum(r.cash_refund_fen), 0),
        ).where(r.institution_id == institution_id, r.created_at >= start, r.created_at < end)
    ).one()
    payments = dict(
        zip(("count", "total_fen", "account_fen", "mutual_aid_fen", "cash_fen"), map(int, pay), strict=True)
    )
    refunds = dict(
        zip(("count", "total_fen", "account_fen", "mutual_aid_fen", "cash_fen"), map(int, ref), strict=True)
    )
    led = _ledger_day(uow, institution_id, start, end)
    net_total = payments["total_fen"] - refunds["total_fen"]
    net_insurance = (payments["account_fen"] + payments["mutual_aid_fen"]) - (
        refunds["account_fen"] + refunds["mutual_aid_fen"]
    )
    net_cash = payments["cash_fen"] - refunds["cash_fen"]
    return {
        "date": day.isoformat(),
        "timezone": "Asia/Shanghai",
        "payments": payments,
        "refunds": refunds,
        "net": {"total_fen": net_total, "insurance_fen": net_insurance, "cash_fen": net_cash},
        "ledger": led,
        "reconciled": led
        == {"clearing_fen": net_total, "insurance_fen": net_insurance, "cash_fen": net_cash},
    }


def _ledger_day(uow: UnitOfWork, institution_id: int, start: datetime, end: datetime) -> dict[str, int]:
    """The clearing account's movement that day, split by where the money came from."""
    clearing = uow.session.scalar(select(Account.id).where(Account.institution_id == institution_id))
    if clearing is None:
        return {"clearing_fen": 0, "insurance_fen": 0, "cash_fen": 0}
    day_txns = (
        select(Entry.transaction_id)
        .join(LedgerTransaction, LedgerTransaction.id == Entry.transaction_id)
        .where(
            Entry.account_id == clearing,
            LedgerTransaction.created_at >= start,
            LedgerTransaction.created_at < end,
        )
        .scalar_subquery()
    )
    rows = uow.session.execute(
        select(Account.kind, func.coalesce(func.sum(Entry.amount_fen), 0))
        .join(Account, Account.id == Entry.account_id)
        .where(Entry.transaction_id.in_(day_txns))
        .group_by(Account.kind)
    ).all()
    by_kind = {k: int(v) for k, v in rows}
    return {
        "clearing_fen": by_kind.get("clearing", 0),
        "insurance_fen": -by_kind.get("personal", 0),
        "cash_fen": -by_kind.get("cash", 0),
    }


def reconcile(uow: UnitOfWork) -> dict[str, Any]:
    """Whole-ledger checks: every transaction sums to zero and is sealed; balances equal their entries."""
    unbalanced = uow.session.scalar(
        select(func.count()).select_from(
            select(Entry.transaction_id)
            .group_by(Entry.transaction_id)
            .having(func.sum(Entry.amount_fen) != 0)
            .subquery()
        )
    )
    unsealed = uow.session.scalar(
        select(func.count(LedgerTransaction.id)).where(LedgerTransaction.sealed.is_(False))
    )
    sums = dict(
        uow.session.execute(
            select(Entry.account_id, func.sum(Entry.amount_fen)).group_by(Entry.account_id)
        ).all()
    )
    mismatched = [
        a.id
        for a in uow.session.scalars(select(Account).where(Account.kind == "personal"))
        if a.balance_fen != int(sums.get(a.id, 0))
    ]
    negative = uow.session.scalar(
        select(func.count(Account.id)).where(and_(Account.kind == "personal", Account.balance_fen < 0))
    )
    total = int(uow.session.scalar(select(func.coalesce(func.sum(Entry.amount_fen), 0))))
    return {
        "unbalanced_transactions": int(unbalanced or 0),
        "unsealed_transactions": int(unsealed or 0),
        "balance_mismatches": mismatched,
        "negative_balances": int(negative or 0),
        "ledger_total_fen": total,
        "ok": not unbalanced and not unsealed and not mismatched and not negative and total == 0,
    }
