"""Refunds: all or part of a paid order back to the sources that paid it (mutual-aid holders in
reverse charge order, then the own account, cash last), and the release of traceability codes (and of
the units fund supervision counted: the same boxes)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from supervision import checks as supervision
from yibao.db import UnitOfWork, utcnow
from yibao.errors import AppError

from . import ledger, money, orders, webhooks
from .models import Account, Entry, LedgerTransaction, OrderItem, PaymentOrder, Refund, TraceCodeSettlement


def refund_order(
    uow: UnitOfWork,
    *,
    pay_order_id: str,
    institution_id: int,
    amount_fen: int | None,
    reason: str,
    trace_codes: Sequence[str] = (),
) -> Refund:
    """Refund all (amount_fen None) or part: insurance money first (mutual aid, then own account), cash last.

    Raises: ORDER_NOT_FOUND, ORDER_STATE_CONFLICT, REFUND_EXCEEDS_PAID, TRACE_CODE_MALFORMED,
    TRACE_CODE_NOT_IN_ORDER, REFUND_TOO_SMALL_FOR_CODES.
    """
    now = utcnow()
    order = orders.order_for_institution(uow, pay_order_id, institution_id)
    if order.med_type is not None:  # a hospital settlement (issue 15) is refunded whole
        from . import hospital_refunds

        return hospital_refunds.refund(
            uow, order, institution_id=institution_id, amount_fen=amount_fen, reason=reason
        )
    if order.status not in ("paid", "partially_refunded"):
        raise AppError("ORDER_STATE_CONFLICT", order_status=order.status)
    left = order.total_fen - order.refunded_fen
    amount = left if amount_fen is None else amount_fen
    if amount <= 0 or amount > left:
        raise AppError("REFUND_EXCEEDS_PAID", refundable_fen=left)
    own = ledger.personal_account(uow, order.payer_person_id)
    by_source = paid_by_source(uow, order)
    own_left = by_source.pop(own.id, 0) if own else 0
    # Holders in the order the payment charged them (its entries' order), whatever the filings say now:
    # a holder who withdrew since still gets back what they paid, in their place.
    charged = _charge_order(uow, order)
    aid_left = [(a, by_source[a]) for a in charged if by_source.get(a)] + [
        (a, f) for a, f in by_source.items() if a not in charged and f
    ]
    cash_left = order.cash_pay_fen - order.cash_refunded_fen
    rs = money.split_refund(amount, account_left=own_left, mutual_aid_left=aid_left, cash_left=cash_left)
    active, release = _codes_to_release(uow, order, amount, trace_codes)
    refund = Refund(
        refund_id="rf_" + secrets.token_urlsafe(18),
        order_id=order.id,
        institution_id=institution_id,
        amount_fen=amount,
        account_refund_fen=rs.account_fen + rs.mutual_aid_fen,
        mutual_aid_refund_fen=rs.mutual_aid_fen,
        cash_refund_fen=rs.cash_fen,
        reason=reason,
        released_trace_codes=release,
        status="succeeded",
        created_at=now,
    )
    uow.session.add(refund)
    uow.session.flush()
    for key in release:
        active[key].released_at = now
        active[key].released_by_refund_id = refund.id
    legs = [(a, f) for a, f in rs.mutual_aid]
    personal = [a for a, _ in rs.mutual_aid]
    if own and rs.account_fen:
        legs.append((own.id, rs.account_fen))
        personal.append(own.id)
    clearing, cash = ledger.settlement_accounts(uow, institution_id)
    legs += [(cash, rs.cash_fen), (clearing, -amount)]
    ledger.post(
        uow, kind="refund", legs=legs, order_id=order.id, refund_id=refund.id, personal_ids=personal, at=now
    )
    final = order.refunded_fen + amount == order.total_fen
    # Supervision gets back the units the refund releases, as for traceability codes: all on the final
    # refund, the boxes of the released codes otherwise.
    supervision.record_refund(
        uow,
        order_ref=order.pay_order_id,
        lines_released=None if final else _units_of_codes(uow, order, release),
    )
    orders.transition(order, "refunded" if final else "partially_refunded")
    order.refunded_fen += amount
    order.account_refunded_fen += rs.account_fen
    order.mutual_aid_refunded_fen += rs.mutual_aid_fen
    order.cash_refunded_fen += rs.cash_fen
    order.updated_at = now
    uow.session.flush()
    webhooks.enqueue(
        uow,
        institution_id=institution_id,
        type="payment.refunded",
        data={**orders.order_view(order), "refund": refund_view(refund)},
        now=now,
    )
    return refund


def _codes_to_release(
    uow: UnitOfWork, order: PaymentOrder, amount: int, trace_codes: Sequence[str]
) -> tuple[dict[str, TraceCodeSettlement], list[str]]:
    """A refund releases traceability codes: the ones named, or all remaining on a final refund.

    Returns (the order's active settlements by key, the keys to release). A released box may be sold
    again, so the refunds must have paid back every released box: otherwise a 1-fen refund naming
    every code would put the whole order's boxes back on sale (REFUND_TOO_SMALL_FOR_CODES).
    """
    active = {
        s.code: s
        for s in uow.session.scalars(
            select(TraceCodeSettlement).where(
                TraceCodeSettlement.order_id == order.id, TraceCodeSettlement.released_at.is_(None)
            )
        )
    }
    release: list[str] = []
    for code in trace_codes:
        key = orders.trace_key(code)
        if key not in active or key in release:
            raise AppError("TRACE_CODE_NOT_IN_ORDER")
        release.append(key)
    if order.refunded_fen + amount == order.total_fen:  # the final refund
        return active, list(active)
    if release:
        price = _unit_price_by_key(uow, order)
        released_before = uow.session.scalars(
            select(TraceCodeSettlement.code).where(
                TraceCodeSettlement.order_id == order.id, TraceCodeSettlement.released_at.is_not(None)
            )
        ).all()
        value = sum(price.get(k, 0) for k in [*released_before, *release])
        if value > order.refunded_fen + amount:
            raise AppError("REFUND_TOO_SMALL_FOR_CODES", released_value_fen=value)
    return active, release


def paid_by_source(uow: UnitOfWork, order: PaymentOrder) -> dict[int, int]:
    """Net fen each personal account paid for this order so far (payment minus refunds), from the ledger."""
    rows = uow.session.execute(
        select(Entry.account_id, func.sum(Entry.amount_fen))
        .join(LedgerTransaction, LedgerTransaction.id == Entry.transaction_id)
        .join(Account, Account.id == Entry.account_id)
        .where(LedgerTransaction.order_id == order.id, Account.kind == "personal")
        .group_by(Entry.account_id)
    )
    return {acct: -int(total) for acct, total in rows}


def _charge_order(uow: UnitOfWork, order: PaymentOrder) -> list[int]:
    """Personal accounts debited by the order's payment, in the order the payment posted them."""
    rows = uow.session.scalars(
        select(Entry.account_id)
        .join(LedgerTransaction, LedgerTransaction.id == Entry.transaction_id)
        .join(Account, Account.id == Entry.account_id)
        .where(
            LedgerTransaction.order_id == order.id,
            LedgerTransaction.kind == "payment",
            Account.kind == "personal",
            Entry.amount_fen < 0,
        )
        .order_by(Entry.id)
    ).all()
    return list(dict.fromkeys(rows))


def _units_of_codes(uow: UnitOfWork, order: PaymentOrder, keys: Sequence[str]) -> list[tuple[str, int]]:
    """The boxes of these settlement keys as (drug_code, 1) lines (no statement when there are none)."""
    if not keys:
        return []
    items = uow.session.scalars(select(OrderItem).where(OrderItem.order_id == order.id)).all()
    code_of = {orders.trace_key(code): it.drug_code for it in items for code in (it.trace_codes or ())}
    return [(code_of[k], 1) for k in keys]


def _unit_price_by_key(uow: UnitOfWork, order: PaymentOrder) -> dict[str, int]:
    """Each traceability code's settlement key → the unit price of its line."""
    items = uow.session.scalars(select(OrderItem).where(OrderItem.order_id == order.id)).all()
    return {orders.trace_key(code): it.unit_price_fen for it in items for code in (it.trace_codes or ())}


def refund_view(refund: Refund) -> dict[str, Any]:
    """The refund as the API (schemas.RefundOut) and the webhooks show it."""
    return {
        "refund_id": refund.refund_id,
        "status": refund.status,
        "amount_fen": refund.amount_fen,
        "account_refund_fen": refund.account_refund_fen,
        "mutual_aid_refund_fen": refund.mutual_aid_refund_fen,
        "cash_refund_fen": refund.cash_refund_fen,
        "released_trace_codes": list(refund.released_trace_codes or []),
        "reason": refund.reason,
        "created_at": refund.created_at,
        **hospital_refund_extra(refund),
    }


def hospital_refund_extra(refund: Refund) -> dict[str, Any]:
    """The fund refunds of a hospital order's refund ({} for a v1 order)."""
    from . import hospital_views

    return hospital_views.refund_extra(refund)


def order_refunds(uow: UnitOfWork, order: PaymentOrder) -> list[Refund]:
    """The order's refunds, oldest first."""
    return list(uow.session.scalars(select(Refund).where(Refund.order_id == order.id).order_by(Refund.id)))
