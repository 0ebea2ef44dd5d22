"""Payment orders: the state machine, placing an order (item and traceability-code checks, the
pay authorization it consumes, the quoted split), cancelling it, expiring unpaid ones.

Paying is in settlement.py, refunds in refunds.py, what readers see in order_reads.py.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.exc import IntegrityError

from supervision import checks as supervision
from yibao.db import UnitOfWork, utcnow
from yibao.errors import AppError
from yibao.registry import services as registry
from yibao.registry.models import Institution

from . import grants, ledger, money, payers, tracecodes, webhooks
from .models import OrderItem, PaymentOrder, TraceCodeSettlement

# How long after it was placed an order may still be paid: the user's consent (the pay authorization
# or ec_token it consumed) does not let an institution charge the account days later.
PAY_WINDOW = timedelta(minutes=30)

# The order state machine: anything not listed here is ORDER_STATE_CONFLICT.
TRANSITIONS: dict[str, set[str]] = {
    "created": {"paid", "cancelled"},
    "paid": {"partially_refunded", "refunded"},
    "partially_refunded": {"partially_refunded", "refunded"},
    "refunded": set(),
    "cancelled": set(),
}


def check_transition(status: str, to: str) -> None:
    """May an order in `status` move to `to`?

    Raises: ORDER_STATE_CONFLICT.
    """
    if to not in TRANSITIONS[status]:
        raise AppError("ORDER_STATE_CONFLICT", order_status=status)


def transition(order: PaymentOrder, to: str) -> None:
    """Move the order to `to`.

    Raises: ORDER_STATE_CONFLICT.
    """
    check_transition(order.status, to)
    order.status = to


class OrderValues(SimpleNamespace):
    """An order's column values without the ORM (what pay reads as columns and answers): the
    attributes of a PaymentOrder, for order_view and the callers of pay."""

    @classmethod
    def of(cls, row: Row, **changes: Any) -> OrderValues:
        """The order columns of `row` (a result row that has them by name), with `changes` applied."""
        mapping = row._mapping
        return cls(**({name: mapping[name] for name in _ORDER_COLUMNS} | changes))


_ORDER_COLUMNS = tuple(PaymentOrder.__table__.c.keys())


def trace_key(code: str) -> str:
    """One settlement key per physical box whatever the notation (see payments/tracecodes.py).

    Raises: TRACE_CODE_MALFORMED.
    """
    key = tracecodes.settlement_key(code)
    if key is None:
        raise AppError("TRACE_CODE_MALFORMED")
    return key


@dataclass(frozen=True)
class CheckedOrder:
    """An order placed or paid, with the supervision warn rules it broke ([{rule_id, kind, evidence}])."""

    order: PaymentOrder | OrderValues
    warnings: list[dict[str, Any]]


@dataclass(frozen=True)
class ItemIn:
    drug_code: str
    drug_name: str
    otc: bool
    quantity: int
    unit_price_fen: int
    trace_codes: tuple[str, ...]


def validate_items(items: Sequence[ItemIn], delivery_fee_fen: int) -> tuple[int, int]:
    """Traceability codes and totals; returns (drug_fen, total_fen).

    Raises: TRACE_CODE_COUNT_MISMATCH, TRACE_CODE_MALFORMED, TRACE_CODE_DUPLICATE, AMOUNT_TOO_LARGE.
    """
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.trace_codes and len(item.trace_codes) != item.quantity:
            raise AppError("TRACE_CODE_COUNT_MISMATCH", line_no=i + 1)
        for code in item.trace_codes:
            if not tracecodes.valid_trace_code(code):
                raise AppError("TRACE_CODE_MALFORMED", line_no=i + 1)
            key = trace_key(code)
            if key in seen:
                raise AppError("TRACE_CODE_DUPLICATE", line_no=i + 1)
            seen.add(key)
    try:
        return money.order_total([(it.quantity, it.unit_price_fen) for it in items], delivery_fee_fen)
    except money.AmountTooLarge as exc:
        raise AppError("AMOUNT_TOO_LARGE") from exc


def _any_settled(uow: UnitOfWork, items: Sequence[ItemIn]) -> bool:
    """Is any of the items' traceability codes settled by an order and not released?"""
    keys = [trace_key(c) for it in items for c in it.trace_codes]
    if not keys:
        return False
    return (
        uow.session.scalar(
            select(TraceCodeSettlement.id)
            .where(TraceCodeSettlement.code.in_(keys), TraceCodeSettlement.released_at.is_(None))
            .limit(1)
        )
        is not None
    )


def create_order(
    uow: UnitOfWork,
    *,
    institution_id: int,
    pay_auth_no: str | None,
    ec_token: str | None,
    merchant_order_no: str,
    items: Sequence[ItemIn],
    delivery_fee_fen: int,
    account_only: bool,
) -> CheckedOrder:
    """Validate and place an order; the split it returns is a quote, fixed when `pay` runs.

    Online purchase (online_otc) covers OTC drugs only. A payer without a personal account (resident
    insurance) pays in cash.

    Raises: TRACE_CODE_COUNT_MISMATCH, TRACE_CODE_MALFORMED, TRACE_CODE_DUPLICATE, AMOUNT_TOO_LARGE,
    PAY_AUTH_INVALID, PAY_AUTH_ALREADY_USED, INSTITUTION_NOT_DESIGNATED, BUSINESS_TYPE_NOT_PAYABLE,
    EC_TOKEN_INVALID, ITEM_NOT_ELIGIBLE, PERSON_SUSPENDED, NOT_PERMITTED, BINDING_NOT_ACTIVE,
    TRACE_CODE_ALREADY_SETTLED, INSUFFICIENT_BALANCE, SUPERVISION_BLOCKED, MERCHANT_ORDER_EXISTS.
    """
    now = utcnow()
    inst = uow.session.get(Institution, institution_id)
    assert inst is not None
    drug_fen, total_fen = validate_items(items, delivery_fee_fen)
    grant = grants.use_grant(uow, inst, pay_auth_no=pay_auth_no, ec_token=ec_token, now=now)
    if grant.purpose == "online_otc" and not all(it.otc for it in items):
        raise AppError("ITEM_NOT_ELIGIBLE")
    payer = registry.person_by_id(uow, grant.person_id)
    if payer is None or payer.status != "active":
        raise AppError("PERSON_SUSPENDED")
    payers.recheck_actor(
        uow, actor_person_id=grant.actor_person_id, payer_person_id=payer.id, source=grant.source
    )
    if _any_settled(uow, items):
        raise AppError("TRACE_CODE_ALREADY_SETTLED")
    own = ledger.personal_account(uow, payer.id)
    holders = payers.holder_accounts(uow, payer.id)
    split = money.split_payment(
        drug_fen=drug_fen,
        delivery_fee_fen=delivery_fee_fen,
        own_balance=own.balance_fen if own else 0,
        holder_balances=[(a.id, a.balance_fen) for a in holders],
    )
    if account_only and split.cash_fen > delivery_fee_fen:
        raise AppError("INSUFFICIENT_BALANCE")
    pay_order_id = "po_" + secrets.token_urlsafe(18)
    # Fund supervision counts the units bought for the insured person (the payer), not the holders.
    verdict = supervision.check_order(
        uow,
        person_id=payer.id,
        institution_id=inst.id,
        lines=[(it.drug_code, it.quantity) for it in items],
        stage="create",
        order_ref=pay_order_id,
        now=now,
    )
    order = PaymentOrder(
        pay_order_id=pay_order_id,
        institution_id=inst.id,
        payer_person_id=payer.id,
        actor_person_id=grant.actor_person_id,
        grant_id=grant.id,
        purpose=grant.purpose,
        merchant_order_no=merchant_order_no,
        account_only=account_only,
        status="created",
        drug_fen=drug_fen,
        delivery_fee_fen=delivery_fee_fen,
        total_fen=total_fen,
        account_pay_fen=split.account_fen,
        mutual_aid_pay_fen=split.mutual_aid_fen,
        cash_pay_fen=split.cash_fen,
        created_at=now,
        updated_at=now,
    )
    try:
        with uow.session.begin_nested():
            uow.session.add(order)
    except IntegrityError as exc:
        raise AppError("MERCHANT_ORDER_EXISTS") from exc
    uow.session.add_all(
        OrderItem(
            order_id=order.id,
            line_no=i + 1,
            drug_code=it.drug_code,
            drug_name=it.drug_name,
            otc=it.otc,
            quantity=it.quantity,
            unit_price_fen=it.unit_price_fen,
            trace_codes=list(it.trace_codes),
        )
        for i, it in enumerate(items)
    )
    uow.session.flush()
    return CheckedOrder(order, verdict.warnings)


def order_for_institution(uow: UnitOfWork, pay_order_id: str, institution_id: int) -> PaymentOrder:
    """Lock the institution's order; another institution's order looks exactly like a missing one.

    Raises: ORDER_NOT_FOUND.
    """
    order = uow.session.scalar(
        select(PaymentOrder).where(PaymentOrder.pay_order_id == pay_order_id).with_for_update()
    )
    if order is None or order.institution_id != institution_id:
        raise AppError("ORDER_NOT_FOUND")
    return order


def order_view(order: PaymentOrder | OrderValues) -> dict[str, Any]:
    """The order as the API (schemas.OrderOut) and the webhooks show it."""
    return {
        "pay_order_id": order.pay_order_id,
        "merchant_order_no": order.merchant_order_no,
        "status": order.status,
        "purpose": order.purpose,
        "account_only": order.account_only,
        "total_fen": order.total_fen,
        "drug_fen": order.drug_fen,
        "delivery_fee_fen": order.delivery_fee_fen,
        "account_pay_fen": order.account_pay_fen,
        "mutual_aid_pay_fen": order.mutual_aid_pay_fen,
        "cash_pay_fen": order.cash_pay_fen,
        "refunded_fen": order.refunded_fen,
        "created_at": order.created_at,
        "paid_at": order.paid_at,
        **_hospital_extra(order),
    }


def checked_view(checked: CheckedOrder) -> dict[str, Any]:
    """The answer of POST /payment-orders and of pay (schemas.CheckedOrderOut): the order and its warnings."""
    return {**order_view(checked.order), "warnings": checked.warnings}


def _hospital_extra(order: PaymentOrder | OrderValues) -> dict[str, Any]:
    """The split fields of a hospital order (issue 15); nothing for a v1 order."""
    if order.med_type is None:
        return {}
    from . import hospital_views

    return hospital_views.order_extra(order)


def cancel_order(uow: UnitOfWork, *, pay_order_id: str, institution_id: int) -> PaymentOrder:
    """Revoke an unpaid order.

    Raises: ORDER_NOT_FOUND, ORDER_STATE_CONFLICT.
    """
    now = utcnow()
    order = order_for_institution(uow, pay_order_id, institution_id)
    transition(order, "cancelled")
    order.cancelled_at = now
    order.updated_at = now
    uow.session.flush()
    webhooks.enqueue(
        uow, institution_id=institution_id, type="payment.cancelled", data=order_view(order), now=now
    )
    return order


def expire_unpaid_orders(uow: UnitOfWork, *, now: datetime | None = None, limit: int = 500) -> list[str]:
    """Cancel orders left unpaid past the pay window (cron: `yibao payments expire-orders`).

    Each gets the payment.cancelled webhook like an institution's cancel. Rows locked by a payment
    in flight are skipped (that payment is refused as ORDER_EXPIRED; the next run cancels the order).
    """
    now = now or utcnow()
    orders = uow.session.scalars(
        select(PaymentOrder)
        .where(PaymentOrder.status == "created", PaymentOrder.created_at < now - PAY_WINDOW)
        .order_by(PaymentOrder.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for order in orders:
        transition(order, "cancelled")
        order.cancelled_at = now
        order.updated_at = now
    uow.session.flush()
    for order in orders:
        webhooks.enqueue(
            uow,
            institution_id=order.institution_id,
            type="payment.cancelled",
            data=order_view(order),
            now=now,
        )
    return [o.pay_order_id for o in orders]
