"""Paying an order (the hot path): the charge split (own account first, then the mutual-aid holders
in order, then cash), traceability-code settlement, the ledger posting and the paid state, in the
caller's unit of work. Round trips are counted here: see queries.py for the prebuilt statements."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm.attributes import set_committed_value

from supervision import checks as supervision
from yibao.db import UnitOfWork, utcnow
from yibao.errors import AppError
from yibao.registry import services as registry

from . import faults, ledger, money, orders, payers, queries, webhooks
from .models import PaymentGrant, PaymentOrder


def _order_for_pay(
    uow: UnitOfWork, pay_order_id: str, institution_id: int
) -> tuple[PaymentOrder, list[str], bool, int | None, int | None, list[tuple[str, int]]]:
    """Lock the order and, in the same round trip, read what pay needs besides it.

    (order, settlement keys of its items in line order, webhook endpoint exists, clearing account
    id, cash account id, its lines as (drug_code, quantity) for supervision). Only the order row is
    locked (FOR UPDATE OF payment_orders): the item rows never change after placement, the endpoint
    flag is a read like webhooks.enqueue's, and the clearing and cash accounts have no balance column
    to protect.
    """
    rows = queries.order_for_pay_rows(uow, pay_order_id)
    if not rows or rows[0][0].institution_id != institution_id:
        raise AppError("ORDER_NOT_FOUND")
    order, _, endpoint, clearing_id, cash_id, *_ = rows[0]
    keys = [orders.trace_key(c) for row in rows for c in (row[1] or ())]
    lines = [(row.drug_code, row.quantity) for row in rows]
    return order, keys, bool(endpoint), clearing_id, cash_id, lines


def pay_order(uow: UnitOfWork, *, pay_order_id: str, institution_id: int) -> orders.CheckedOrder:
    """Settle atomically: debit the accounts, settle traceability codes, post the ledger, mark paid.

    With account_only, a drug amount the accounts cannot cover is refused instead of paid in cash.

    Raises: ORDER_NOT_FOUND, ORDER_STATE_CONFLICT, ORDER_EXPIRED, PERSON_SUSPENDED, NOT_PERMITTED,
    BINDING_NOT_ACTIVE, SUPERVISION_BLOCKED, INSUFFICIENT_BALANCE, TRACE_CODE_ALREADY_SETTLED,
    TRACE_CODE_MALFORMED.
    """
    now = utcnow()
    order, keys, has_endpoint, clearing, cash, lines = _order_for_pay(uow, pay_order_id, institution_id)
    if order.med_type is not None:  # a hospital settlement (issue 15): its own split and ledger legs
        from . import hospital

        return hospital.pay(
            uow,
            order,
            keys=keys,
            has_endpoint=has_endpoint,
            clearing=clearing,
            cash=cash,
            lines=lines,
            now=now,
        )
    # No autoflush: the status change would otherwise be written by the next SELECT and the amounts
    # by a second UPDATE; one explicit UPDATE at the end writes the order once.
    with uow.session.no_autoflush:
        orders.transition(order, "paid")
        if now - order.created_at > orders.PAY_WINDOW:
            raise AppError("ORDER_EXPIRED")
        # The payer may have been suspended since the order was placed: a suspended account pays nothing.
        if registry.person_status_locked(uow, order.payer_person_id) != "active":
            raise AppError("PERSON_SUSPENDED")
        if order.actor_person_id is not None:  # the binding may have ended since the order was placed
            source = uow.session.scalar(select(PaymentGrant.source).where(PaymentGrant.id == order.grant_id))
            payers.recheck_actor(
                uow,
                actor_person_id=order.actor_person_id,
                payer_person_id=order.payer_person_id,
                source=source,
            )
        holder_pids = payers.holder_person_ids(uow, order.payer_person_id)
        # One round trip locks the payer's and the holders' accounts: the balances we split on stay true.
        locked = ledger.lock_accounts_of(uow, [order.payer_person_id, *holder_pids])
        # Supervision again (a rule may have changed since the order), under the person's supervision
        # lock; the sale is counted in the payment's transaction.
        person = order.payer_person_id
        verdict = supervision.check_order(
            uow,
            person_id=person,
            institution_id=institution_id,
            lines=lines,
            stage="pay",
            order_ref=pay_order_id,
            now=now,
        )
        supervision.record_sale(
            uow, person_id=person, institution_id=institution_id, lines=lines, order_ref=pay_order_id, at=now
        )
        own = locked.get(order.payer_person_id)
        holders = [locked[pid] for pid in holder_pids if pid in locked]
        split = money.split_payment(
            drug_fen=order.drug_fen,
            delivery_fee_fen=order.delivery_fee_fen,
            own_balance=own[1] if own else 0,
            holder_balances=holders,
        )
        if order.account_only and split.cash_fen > order.delivery_fee_fen:
            raise AppError("INSUFFICIENT_BALANCE")
        if keys:
            settle_codes(uow, keys, order.id, now)
        if clearing is None or cash is None:  # first payment of this institution (or of the system)
            clearing, cash = ledger.settlement_accounts(uow, institution_id)
        legs = [(acct_id, -fen) for acct_id, fen in split.mutual_aid]
        if own:
            legs.append((own[0], -split.account_fen))
        legs += [(cash, -split.cash_fen), (clearing, split.total_fen)]
        personal = [own[0]] if own else []
        ledger.post(
            uow,
            kind="payment",
            legs=legs,
            order_id=order.id,
            personal_ids=personal + [a for a, _ in holders],
            at=now,
        )
        faults.hit("pay.after_debit")
        paid = {
            "status": order.status,
            "account_pay_fen": split.account_fen,
            "mutual_aid_pay_fen": split.mutual_aid_fen,
            "cash_pay_fen": split.cash_fen,
            "paid_at": now,
            "updated_at": now,
        }
        # One prebuilt UPDATE instead of an ORM flush; the loaded object is then told the new values
        # as committed state, so the session has nothing left to write for it.
        queries.mark_paid(uow, order.id, paid)
        for attr, value in paid.items():
            set_committed_value(order, attr, value)
    webhooks.enqueue(
        uow,
        institution_id=institution_id,
        type="payment.paid",
        data=orders.order_view(order),
        now=now,
        has_endpoint=has_endpoint,
    )
    faults.hit("pay.before_commit")
    return orders.CheckedOrder(order, verdict.warnings)


def settle_codes(uow: UnitOfWork, keys: Sequence[str], order_id: int, now: datetime) -> None:
    """Claim the codes; the partial unique index allows one active settlement per code, system-wide.

    Raises: TRACE_CODE_ALREADY_SETTLED.
    """
    # A concurrent settlement of the same code waits on the index entry, then lands here as a conflict.
    if queries.insert_settlements(uow, keys, order_id, now) != len(keys):
        raise AppError("TRACE_CODE_ALREADY_SETTLED")
