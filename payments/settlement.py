"""Paying an order (the hot path): the charge split (own account first, then the mutual-aid holders
in order, then cash), traceability-code settlement, the ledger posting and the paid state, in the
caller's unit of work. Round trips are counted here: see queries.py for the prebuilt statements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row

from supervision import checks as supervision
from yibao.db import UnitOfWork, utcnow
from yibao.errors import AppError

from . import faults, ledger, money, orders, payers, queries, webhooks


@dataclass(frozen=True)
class _ForPay:
    """What the first statement of pay read (queries.order_for_pay_rows)."""

    order: Row  # the order's columns, its row locked
    keys: list[str]  # settlement keys of its items' traceability codes, in line order
    has_endpoint: bool
    clearing: int | None
    cash: int | None
    lines: list[tuple[str, int]]  # (drug_code, quantity) for supervision
    payer_status: str | None  # share-locked
    may_have_holders: bool
    rules_version: int | None  # supervision's, passed to check_order (no statement of its own)


def _order_for_pay(uow: UnitOfWork, pay_order_id: str, institution_id: int) -> _ForPay:
    """Lock the order and, in the same round trip, read what pay needs besides it.

    Only the order row is locked FOR UPDATE (OF payment_orders): the item rows never change after
    placement, the endpoint flag is a read like webhooks.enqueue's, and the clearing and cash accounts
    have no balance column to protect. The payer's registry row is share-locked (a concurrent
    suspension waits for this payment), as registry.person_status_locked does.

    Raises: ORDER_NOT_FOUND.
    """
    rows = queries.order_for_pay_rows(uow, pay_order_id)
    if not rows or rows[0].institution_id != institution_id:
        raise AppError("ORDER_NOT_FOUND")
    first = rows[0]
    return _ForPay(
        order=first,
        keys=[orders.trace_key(c) for row in rows for c in (row.trace_codes or ())],
        has_endpoint=bool(first.has_endpoint),
        clearing=first.clearing_id,
        cash=first.cash_id,
        lines=[(row.drug_code, row.quantity) for row in rows],
        payer_status=first.payer_status,
        may_have_holders=bool(first.may_have_holders),
        rules_version=first.rules_version,
    )


def pay_order(uow: UnitOfWork, *, pay_order_id: str, institution_id: int) -> orders.CheckedOrder:
    """Settle atomically: debit the accounts, settle traceability codes, post the ledger, mark paid.

    With account_only, a drug amount the accounts cannot cover is refused instead of paid in cash.

    Raises: ORDER_NOT_FOUND, ORDER_STATE_CONFLICT, ORDER_EXPIRED, PERSON_SUSPENDED, NOT_PERMITTED,
    BINDING_NOT_ACTIVE, SUPERVISION_BLOCKED, INSUFFICIENT_BALANCE, TRACE_CODE_ALREADY_SETTLED,
    TRACE_CODE_MALFORMED.
    """
    now = utcnow()
    got = _order_for_pay(uow, pay_order_id, institution_id)
    order = got.order
    if order.med_type is not None:  # a hospital settlement (issue 15): its own split and ledger legs
        from . import hospital_pay

        return hospital_pay.pay(
            uow,
            order,
            payer_status=got.payer_status,
            may_have_holders=got.may_have_holders,
            keys=got.keys,
            has_endpoint=got.has_endpoint,
            clearing=got.clearing,
            cash=got.cash,
            lines=got.lines,
            now=now,
            rules_version=got.rules_version,
        )
    # The order is read as columns, not as an ORM object: the session has nothing to flush, and one
    # prebuilt UPDATE at the end writes the order once.
    orders.check_transition(order.status, "paid")
    if now - order.created_at > orders.PAY_WINDOW:
        raise AppError("ORDER_EXPIRED")
    # The payer may have been suspended since the order was placed: a suspended account pays nothing.
    if got.payer_status != "active":
        raise AppError("PERSON_SUSPENDED")
    payers.recheck_order_actor(uow, order)  # the binding may have ended since the order was placed
    holder_pids = payers.holder_person_ids(uow, order.payer_person_id, filed=got.may_have_holders)
    # One round trip locks the payer's and the holders' accounts: the balances we split on stay true.
    locked = ledger.lock_accounts_of(uow, [order.payer_person_id, *holder_pids])
    # Supervision again (a rule may have changed since the order), under the person's supervision
    # lock; the sale is counted in the payment's transaction.
    person = order.payer_person_id
    verdict = supervision.check_order(
        uow,
        person_id=person,
        institution_id=institution_id,
        lines=got.lines,
        stage="pay",
        order_ref=pay_order_id,
        now=now,
        rules_version=got.rules_version,  # the rules as of this request's first statement
    )
    supervision.record_sale(
        uow, person_id=person, institution_id=institution_id, lines=got.lines, order_ref=pay_order_id, at=now
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
    if got.keys:
        settle_codes(uow, got.keys, order.id, now)
    clearing, cash = got.clearing, got.cash
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
        "status": "paid",
        "account_pay_fen": split.account_fen,
        "mutual_aid_pay_fen": split.mutual_aid_fen,
        "cash_pay_fen": split.cash_fen,
        "paid_at": now,
        "updated_at": now,
    }
    queries.mark_paid(uow, order.id, paid)
    paid_order = orders.OrderValues.of(order, **paid)
    webhooks.enqueue(
        uow,
        institution_id=institution_id,
        type="payment.paid",
        data=orders.order_view(paid_order),
        now=now,
        has_endpoint=got.has_endpoint,
    )
    faults.hit("pay.before_commit")
    return orders.CheckedOrder(paid_order, verdict.warnings)


def settle_codes(uow: UnitOfWork, keys: Sequence[str], order_id: int, now: datetime) -> None:
    """Claim the codes; the partial unique index allows one active settlement per code, system-wide.

    Raises: TRACE_CODE_ALREADY_SETTLED.
    """
    # A concurrent settlement of the same code waits on the index entry, then lands here as a conflict.
    if queries.insert_settlements(uow, keys, order_id, now) != len(keys):
        raise AppError("TRACE_CODE_ALREADY_SETTLED")
