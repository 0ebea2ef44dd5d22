"""Refunding a hospital settlement: always whole; funds, accounts and cash back, the year's running
totals and the units fund supervision counted given back, in the caller's unit of work."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from benefits import totals as benefit_totals
from supervision import checks as supervision
from yibao.db import UnitOfWork, utcnow
from yibao.errors import AppError

from . import ledger, orders, webhooks
from . import refunds as v1_refunds
from .hospital import FUNDS, fund_account
from .hospital_models import HospitalSettlement
from .models import PaymentOrder, Refund, TraceCodeSettlement


def refund(
    uow: UnitOfWork, order: PaymentOrder, *, institution_id: int, amount_fen: int | None, reason: str
) -> Refund:
    """Refund a paid hospital order whole: funds, accounts and cash back, running totals and the units
    fund supervision counted given back.

    Raises: ORDER_STATE_CONFLICT, REFUND_MUST_BE_WHOLE.
    """
    now = utcnow()
    if order.status != "paid":
        raise AppError("ORDER_STATE_CONFLICT", order_status=order.status)
    left = order.total_fen - order.refunded_fen
    if amount_fen is not None and amount_fen != left:
        raise AppError("REFUND_MUST_BE_WHOLE", refundable_fen=left)
    hs = uow.session.get(HospitalSettlement, order.id)
    assert hs is not None and hs.counted is not None
    row = benefit_totals.lock(uow, order.payer_person_id, hs.year)
    # What each account paid, from the ledger (the payment's own legs).
    by_source = v1_refunds.paid_by_source(uow, order)
    ledger.lock_personal_accounts(uow, list(by_source))
    refund_row = Refund(
        refund_id="rf_" + secrets.token_urlsafe(18),
        order_id=order.id,
        institution_id=institution_id,
        amount_fen=left,
        account_refund_fen=order.account_pay_fen + order.mutual_aid_pay_fen,
        mutual_aid_refund_fen=order.mutual_aid_pay_fen,
        cash_refund_fen=order.cash_pay_fen,
        reason=reason,
        released_trace_codes=[],
        status="succeeded",
        created_at=now,
    )
    uow.session.add(refund_row)
    uow.session.flush()
    active = uow.session.scalars(
        select(TraceCodeSettlement).where(
            TraceCodeSettlement.order_id == order.id, TraceCodeSettlement.released_at.is_(None)
        )
    ).all()
    for t in active:
        t.released_at = now
        t.released_by_refund_id = refund_row.id
    refund_row.released_trace_codes = [t.code for t in active]
    region = hs.split["policy_region"]
    legs = [
        (fund_account(uow, f, region), hs.split[f"{f}_pay_fen"]) for f in FUNDS if hs.split[f"{f}_pay_fen"]
    ]
    legs += [(acct, fen) for acct, fen in by_source.items() if fen]
    clearing, cash = ledger.settlement_accounts(uow, institution_id)
    legs += [(cash, order.cash_pay_fen), (clearing, -left)]
    ledger.post(
        uow,
        kind="refund",
        legs=legs,
        order_id=order.id,
        refund_id=refund_row.id,
        personal_ids=list(by_source),
        at=now,
    )
    benefit_totals.add(row, hs.counted, deductible=(hs.med_type, hs.split["deductible_fen"]), sign=-1)
    supervision.record_refund(uow, order_ref=order.pay_order_id)  # whole: every unit back
    hs.counts_for_day = False
    orders.transition(order, "refunded")
    order.refunded_fen = order.total_fen
    order.account_refunded_fen = order.account_pay_fen
    order.mutual_aid_refunded_fen = order.mutual_aid_pay_fen
    order.cash_refunded_fen = order.cash_pay_fen
    order.updated_at = now
    uow.session.flush()
    webhooks.enqueue(
        uow,
        institution_id=institution_id,
        type="payment.refunded",
        data={**orders.order_view(order), "refund": v1_refunds.refund_view(refund_row)},
        now=now,
    )
    return refund_row
