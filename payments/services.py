"""Payments services: accounts, pay authorizations, orders, pay, cancel, refunds, statements (no Flask)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from family_accounts import acting as family
from voucher import ec_tokens as voucher
from yibao import china_time, hooks
from yibao.db import UnitOfWork, utcnow
from yibao.errors import MESSAGES, AppError, register_messages
from yibao.registry import services as registry
from yibao.registry.models import Institution, Person

from . import faults, ledger, money, tracecodes, webhooks
from .models import (
    Account,
    Entry,
    LedgerTransaction,
    OrderItem,
    PaymentGrant,
    PaymentOrder,
    Refund,
    TraceCodeSettlement,
    WebhookEndpoint,
)
from .tracecodes import valid_trace_code

PAY_AUTH_TTL = timedelta(minutes=5)
# How long after it was placed an order may still be paid: the user's consent (the pay authorization
# or ec_token it consumed) does not let an institution charge the account days later.
PAY_WINDOW = timedelta(minutes=30)
PAYABLE_BUSINESS_TYPES = ("02121", "01301")  # pharmacy purchase, settlement
PURPOSES = ("online_otc", "counter")

# The order state machine: anything not listed here is ORDER_STATE_CONFLICT.
TRANSITIONS: dict[str, set[str]] = {
    "created": {"paid", "cancelled"},
    "paid": {"partially_refunded", "refunded"},
    "partially_refunded": {"partially_refunded", "refunded"},
    "refunded": set(),
    "cancelled": set(),
}

_messages = {
    "REFUND_TOO_SMALL_FOR_CODES": (
        422,
        "The refunds do not pay back the units whose traceability codes would be released.",
        "退款金额不足以覆盖所释放追溯码对应药品的金额。",
    ),
    "ORDER_EXPIRED": (
        409,
        "The order was placed more than 30 minutes ago and can no longer be paid; place a new one.",
        "订单已超过30分钟支付时限，不能再支付；请撤销后重新下单。",
    ),
    "INSUFFICIENT_BALANCE": (
        409,
        "The personal account cannot cover the drugs and account-only payment was requested.",
        "个人账户余额不足（已要求仅用个人账户支付）。",
    ),
    "ITEM_NOT_ELIGIBLE": (
        422,
        "An item is not eligible for this payment (online purchase covers OTC drugs only).",
        "存在不可医保支付的药品（线上仅限非处方药）。",
    ),
    "TRACE_CODE_ALREADY_SETTLED": (
        409,
        "A drug traceability code was already settled.",
        "药品追溯码已被结算过。",
    ),
    "TRACE_CODE_MALFORMED": (
        422,
        "A traceability code is neither 20 digits nor a GS1 element string.",
        "药品追溯码格式不正确。",
    ),
    "TRACE_CODE_DUPLICATE": (422, "The same traceability code appears twice.", "同一追溯码重复出现。"),
    "TRACE_CODE_COUNT_MISMATCH": (
        422,
        "A boxed drug needs one traceability code per unit.",
        "追溯码数量与药品数量不一致。",
    ),
    "TRACE_CODE_NOT_IN_ORDER": (
        422,
        "The traceability code was not settled by this order.",
        "该追溯码不属于本订单的已结算药品。",
    ),
    "ORDER_STATE_CONFLICT": (409, "The order's state does not allow this.", "订单当前状态不允许该操作。"),
    "ORDER_NOT_FOUND": (404, "No such payment order.", "支付订单不存在。"),
    "MERCHANT_ORDER_EXISTS": (
        409,
        "This merchant_order_no was already used by this institution.",
        "商户订单号已存在。",
    ),
    "REFUND_EXCEEDS_PAID": (409, "The refund exceeds what is left to refund.", "退款金额超过可退金额。"),
    "AMOUNT_TOO_LARGE": (422, "An amount exceeds 2^53 - 1 fen.", "金额超出允许范围。"),
    "PAY_AUTH_INVALID": (
        422,
        "The pay_auth_no is unknown or expired.",
        "支付授权码无效或已过期。",
    ),
    "PAY_AUTH_ALREADY_USED": (
        409,
        "The pay authorization (or ec_token) was already used for an order.",
        "支付授权已被使用。",
    ),
    "PAY_AUTH_PURPOSE_MISMATCH": (
        422,
        "The pay authorization was given for another purpose.",
        "支付授权用途不符。",
    ),
    "BUSINESS_TYPE_NOT_PAYABLE": (
        422,
        "The ec_token's business type does not allow payment (02121 or 01301 needed).",
        "该 ec_token 的业务类型不能用于支付（需 02121 或 01301）。",
    ),
    "NO_PERSONAL_ACCOUNT": (422, "The person has no personal account.", "该参保人没有个人账户。"),
    "CONTRIBUTION_CONFLICT": (
        409,
        "A contribution for this person and year was already credited with another amount.",
        "该参保人该年度已记入不同金额。",
    ),
    "IDEMPOTENCY_KEY_REQUIRED": (
        400,
        "Send an Idempotency-Key header (1-255 visible ASCII characters).",
        "请提供 Idempotency-Key 请求头（1-255 个可见 ASCII 字符）。",
    ),
    "IDEMPOTENCY_KEY_REUSED": (
        422,
        "This Idempotency-Key was used with another request.",
        "该幂等键已用于另一个不同的请求。",
    ),
    "IDEMPOTENCY_KEY_IN_USE": (
        409,
        "A request with this Idempotency-Key is still running.",
        "使用该幂等键的请求仍在处理中。",
    ),
}
_shared = {
    # Codes other domains may register too: keep theirs if they came first.
    "INSTITUTION_NOT_DESIGNATED": (
        403,
        "The institution is not designated for this service.",
        "机构未开通该项服务。",
    ),
}
register_messages(_messages)
register_messages({k: v for k, v in _shared.items() if k not in MESSAGES})


def _gs1_key(code: str) -> str:
    """One settlement key per physical box whatever the notation (see payments/tracecodes.py)."""
    key = tracecodes.settlement_key(code)
    if key is None:
        raise AppError("TRACE_CODE_MALFORMED")
    return key


# ---------------------------------------------------------------------------------------------
# accounts


def _amount(fen: int) -> int:
    """An amount within 0..2^53-1 fen, else AMOUNT_TOO_LARGE."""
    try:
        return money.check_amount(fen)
    except money.AmountTooLarge as exc:
        raise AppError("AMOUNT_TOO_LARGE") from exc


@hooks.on("person_created")
def _open_account(uow: UnitOfWork, person: Person, opening_balance_fen: int) -> None:
    """Employees get a personal account; the opening balance comes from the funding account."""
    if person.insurance_type != "employee":
        return
    acct = ledger.open_personal_account(uow, person.id)
    if opening_balance_fen:
        _amount(opening_balance_fen)
        fund = ledger.system_account(uow, ledger.FUNDING)
        ledger.post(
            uow,
            kind="opening",
            legs=[(fund.id, -opening_balance_fen), (acct.id, opening_balance_fen)],
            natural_key=f"opening:{person.id}",
            personal_ids=[acct.id],
        )


def account_of(uow: UnitOfWork, person_id: int) -> Account:
    acct = ledger.personal_account(uow, person_id)
    if acct is None:
        raise AppError("NO_PERSONAL_ACCOUNT")
    return acct


def acting_member(uow: UnitOfWork, actor_person_id: int, on_behalf_of: str | None, action: str) -> int:
    """The person the caller acts for: themself, or a family member if family_accounts allows it."""
    if not on_behalf_of:
        return actor_person_id
    me = registry.person_by_id(uow, actor_person_id)
    if me is not None and me.psn_no == on_behalf_of:
        return actor_person_id
    return family.acting_permission(
        uow, actor_person_id=actor_person_id, member_psn_no=on_behalf_of, action=action
    )


def recheck_actor(uow: UnitOfWork, *, actor_person_id: int | None, payer_person_id: int, source: str) -> None:
    """A payment made by someone acting for the payer needs the family permission still to hold now."""
    if actor_person_id is None or actor_person_id == payer_person_id:
        return
    payer = registry.person_by_id(uow, payer_person_id)
    assert payer is not None
    # A pay_auth_no was given under "pay"; a counter ec_token came from a code shown under "show_voucher".
    action = "pay" if source == "pay_auth" else "show_voucher"
    if (
        family.acting_permission(
            uow, actor_person_id=actor_person_id, member_psn_no=payer.psn_no, action=action
        )
        != payer_person_id
    ):
        raise AppError("NOT_PERMITTED")


@dataclass(frozen=True)
class EntryView:
    entry_id: int
    amount_fen: int
    kind: str
    pay_order_id: str | None
    created_at: datetime


def list_entries(
    uow: UnitOfWork, account_id: int, *, limit: int, before: int | None
) -> tuple[list[EntryView], int | None]:
    """Newest first, keyset-paginated by entry id (cursor = the last id seen)."""
    stmt = (
        select(
            Entry.id, Entry.amount_fen, LedgerTransaction.kind, PaymentOrder.pay_order_id, Entry.created_at
        )
        .join(LedgerTransaction, LedgerTransaction.id == Entry.transaction_id)
        .outerjoin(PaymentOrder, PaymentOrder.id == LedgerTransaction.order_id)
        .where(Entry.account_id == account_id)
        .order_by(Entry.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        stmt = stmt.where(Entry.id < before)
    rows = [EntryView(*r) for r in uow.session.execute(stmt)]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].entry_id if more and rows else None)


@dataclass(frozen=True)
class ContributionResult:
    psn_no: str
    year: int
    amount_fen: int
    balance_fen: int
    created: bool


def credit_contribution(uow: UnitOfWork, *, psn_no: str, year: int, amount_fen: int) -> ContributionResult:
    """Credit a yearly contribution once per (person, year); a replay with the same amount is a no-op."""
    person = registry.require_person(uow, psn_no)
    _amount(amount_fen)
    acct = account_of(uow, person.id)
    key = f"contribution:{person.id}:{year}"
    existing = uow.session.scalar(select(LedgerTransaction.id).where(LedgerTransaction.natural_key == key))
    created = False
    if existing is None:
        try:
            with uow.session.begin_nested():
                fund = ledger.system_account(uow, ledger.FUNDING)
                ledger.post(
                    uow,
                    kind="contribution",
                    legs=[(fund.id, -amount_fen), (acct.id, amount_fen)],
                    natural_key=key,
                    memo=f"yearly contribution {year}",
                    personal_ids=[acct.id],
                )
            created = True
        except IntegrityError:  # a concurrent credit of the same person and year won
            existing = uow.session.scalar(
                select(LedgerTransaction.id).where(LedgerTransaction.natural_key == key)
            )
    if not created:
        credited = uow.session.scalar(
            select(Entry.amount_fen).where(Entry.transaction_id == existing, Entry.account_id == acct.id)
        )
        if credited != amount_fen:
            raise AppError("CONTRIBUTION_CONFLICT", credited_fen=credited)
    uow.session.refresh(acct)
    return ContributionResult(psn_no, year, amount_fen, acct.balance_fen, created)


# ---------------------------------------------------------------------------------------------
# pay authorizations


def create_pay_authorization(
    uow: UnitOfWork, *, actor_person_id: int, purpose: str, on_behalf_of: str | None
) -> PaymentGrant:
    """A single-use pay_auth_no valid 5 minutes; the payer is the member when acting on behalf."""
    payer_id = acting_member(uow, actor_person_id, on_behalf_of, "pay")
    payer = registry.person_by_id(uow, payer_id)
    if payer is None or payer.status != "active":
        raise AppError("PERSON_SUSPENDED")
    now = utcnow()
    grant = PaymentGrant(
        grant_key="pa_" + secrets.token_urlsafe(24),
        source="pay_auth",
        purpose=purpose,
        person_id=payer_id,
        actor_person_id=actor_person_id if actor_person_id != payer_id else None,
        expires_at=now + PAY_AUTH_TTL,
        created_at=now,
    )
    uow.session.add(grant)
    uow.session.flush()
    return grant


def _designated(inst: Institution, purpose: str) -> bool:
    if purpose == "online_otc":
        return inst.designated_for("online_otc")
    return any(inst.designated_for(bt) for bt in PAYABLE_BUSINESS_TYPES)


def _use_grant(
    uow: UnitOfWork, inst: Institution, *, pay_auth_no: str | None, ec_token: str | None, now: datetime
) -> PaymentGrant:
    """Consume a pay_auth_no, or record an ec_token as used; both are single-use."""
    if pay_auth_no is not None:
        grant = uow.session.scalar(
            select(PaymentGrant).where(
                PaymentGrant.grant_key == pay_auth_no, PaymentGrant.source == "pay_auth"
            )
        )
        if grant is None or grant.expires_at <= now:
            raise AppError("PAY_AUTH_INVALID")
        if grant.used_at is not None:
            raise AppError("PAY_AUTH_ALREADY_USED")
        if not _designated(inst, grant.purpose):
            raise AppError("INSTITUTION_NOT_DESIGNATED")
        # Conditional: of two concurrent orders quoting one pay_auth_no only one gets the row.
        res = uow.session.execute(
            update(PaymentGrant)
            .where(PaymentGrant.id == grant.id, PaymentGrant.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:
            raise AppError("PAY_AUTH_ALREADY_USED")
        return grant
    assert ec_token is not None
    ec = voucher.resolve_ec_token(uow, ec_token, institution_id=inst.id)
    if ec.business_type not in PAYABLE_BUSINESS_TYPES:
        raise AppError("BUSINESS_TYPE_NOT_PAYABLE")
    if not _designated(inst, "counter"):
        raise AppError("INSTITUTION_NOT_DESIGNATED")
    grant = PaymentGrant(
        grant_key=hashlib.sha256(ec_token.encode()).hexdigest(),
        source="ec_token",
        purpose="counter",
        person_id=ec.person_id,
        actor_person_id=ec.actor_person_id,
        expires_at=ec.expires_at,
        used_at=now,
        created_at=now,
    )
    try:
        with uow.session.begin_nested():
            uow.session.add(grant)
    except IntegrityError as exc:
        raise AppError("PAY_AUTH_ALREADY_USED") from exc
    return grant


# ---------------------------------------------------------------------------------------------
# orders


@dataclass(frozen=True)
class ItemIn:
    drug_code: str
    drug_name: str
    otc: bool
    quantity: int
    unit_price_fen: int
    trace_codes: tuple[str, ...]


def _validate_items(items: Sequence[ItemIn], delivery_fee_fen: int) -> tuple[int, int]:
    """Traceability codes and totals; returns (drug_fen, total_fen)."""
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.trace_codes and len(item.trace_codes) != item.quantity:
            raise AppError("TRACE_CODE_COUNT_MISMATCH", line_no=i + 1)
        for code in item.trace_codes:
            if not valid_trace_code(code):
                raise AppError("TRACE_CODE_MALFORMED", line_no=i + 1)
            key = _gs1_key(code)
            if key in seen:
                raise AppError("TRACE_CODE_DUPLICATE", line_no=i + 1)
            seen.add(key)
    try:
        return money.order_total([(it.quantity, it.unit_price_fen) for it in items], delivery_fee_fen)
    except money.AmountTooLarge as exc:
        raise AppError("AMOUNT_TOO_LARGE") from exc


def _trace_keys(items: Sequence[OrderItem] | Sequence[ItemIn]) -> list[str]:
    return [_gs1_key(c) for it in items for c in it.trace_codes]


def _settled(uow: UnitOfWork, keys: Sequence[str]) -> bool:
    if not keys:
        return False
    return (
        uow.session.scalar(
            select(TraceCodeSettlement.id)
            .where(TraceCodeSettlement.code.in_(list(keys)), TraceCodeSettlement.released_at.is_(None))
            .limit(1)
        )
        is not None
    )


def _holder_accounts(uow: UnitOfWork, payer_id: int) -> list[Account]:
    holders = family.mutual_aid_holders(uow, member_person_id=payer_id)
    accts = []
    for pid in holders:
        a = ledger.personal_account(uow, pid)
        if a is not None and pid != payer_id:
            accts.append(a)
    return accts


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
) -> PaymentOrder:
    """Validate and place an order; the split it returns is a quote, fixed when `pay` runs."""
    now = utcnow()
    inst = uow.session.get(Institution, institution_id)
    assert inst is not None
    drug_fen, total_fen = _validate_items(items, delivery_fee_fen)
    grant = _use_grant(uow, inst, pay_auth_no=pay_auth_no, ec_token=ec_token, now=now)
    if grant.purpose == "online_otc" and not all(it.otc for it in items):
        raise AppError("ITEM_NOT_ELIGIBLE")
    payer = registry.person_by_id(uow, grant.person_id)
    if payer is None or payer.status != "active":
        raise AppError("PERSON_SUSPENDED")
    recheck_actor(uow, actor_person_id=grant.actor_person_id, payer_person_id=payer.id, source=grant.source)
    if _settled(uow, _trace_keys(items)):
        raise AppError("TRACE_CODE_ALREADY_SETTLED")
    own = ledger.personal_account(uow, payer.id)
    holders = _holder_accounts(uow, payer.id)
    split = money.split_payment(
        drug_fen=drug_fen,
        delivery_fee_fen=delivery_fee_fen,
        own_balance=own.balance_fen if own else 0,
        holder_balances=[(a.id, a.balance_fen) for a in holders],
    )
    if account_only and split.cash_fen > delivery_fee_fen:
        raise AppError("INSUFFICIENT_BALANCE")
    order = PaymentOrder(
        pay_order_id="po_" + secrets.token_urlsafe(18),
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
    return order


def _order_for_institution(uow: UnitOfWork, pay_order_id: str, institution_id: int) -> PaymentOrder:
    """Lock the institution's order; another institution's order looks exactly like a missing one."""
    order = uow.session.scalar(
        select(PaymentOrder).where(PaymentOrder.pay_order_id == pay_order_id).with_for_update()
    )
    if order is None or order.institution_id != institution_id:
        raise AppError("ORDER_NOT_FOUND")
    return order


def _transition(order: PaymentOrder, to: str) -> None:
    if to not in TRANSITIONS[order.status]:
        raise AppError("ORDER_STATE_CONFLICT", order_status=order.status)
    order.status = to


def order_items(uow: UnitOfWork, order: PaymentOrder) -> list[OrderItem]:
    return list(
        uow.session.scalars(
            select(OrderItem).where(OrderItem.order_id == order.id).order_by(OrderItem.line_no)
        )
    )


def order_view(order: PaymentOrder, org_id: str | None = None) -> dict[str, Any]:
    """The order as the API and webhooks show it."""
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
    }


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
        select(PaymentOrder, OrderItem.trace_codes, has_endpoint, clearing, cash)
        .outerjoin(OrderItem, OrderItem.order_id == PaymentOrder.id)
        .where(PaymentOrder.pay_order_id == bindparam("pay_order_id"))
        .order_by(OrderItem.line_no)
        .with_for_update(of=PaymentOrder)
    )


_ORDER_FOR_PAY = _order_for_pay_stmt()  # prebuilt: pay is the hot path
_ORDERS = PaymentOrder.__table__
_MARK_PAID = _ORDERS.update().where(_ORDERS.c.id == bindparam("order_pk"))


def _order_for_pay(
    uow: UnitOfWork, pay_order_id: str, institution_id: int
) -> tuple[PaymentOrder, list[str], bool, int | None, int | None]:
    """Lock the order and, in the same round trip, read what pay needs besides it.

    (order, settlement keys of its items in line order, webhook endpoint exists, clearing account
    id, cash account id). Only the order row is locked (FOR UPDATE OF payment_orders): the item rows
    never change after placement, the endpoint flag is a read like webhooks.enqueue's, and the
    clearing and cash accounts have no balance column to protect.
    """
    rows = uow.session.execute(_ORDER_FOR_PAY, {"pay_order_id": pay_order_id}).all()
    if not rows or rows[0][0].institution_id != institution_id:
        raise AppError("ORDER_NOT_FOUND")
    order, _, endpoint, clearing_id, cash_id = rows[0]
    keys = [_gs1_key(c) for row in rows for c in (row[1] or ())]
    return order, keys, bool(endpoint), clearing_id, cash_id


def pay_order(uow: UnitOfWork, *, pay_order_id: str, institution_id: int) -> PaymentOrder:
    """Settle atomically: debit the accounts, settle traceability codes, post the ledger, mark paid."""
    now = utcnow()
    order, keys, has_endpoint, clearing, cash = _order_for_pay(uow, pay_order_id, institution_id)
    # No autoflush: the status change would otherwise be written by the next SELECT and the amounts
    # by a second UPDATE; one explicit flush at the end writes the order once.
    with uow.session.no_autoflush:
        _transition(order, "paid")
        if now - order.created_at > PAY_WINDOW:
            raise AppError("ORDER_EXPIRED")
        # The payer may have been suspended since the order was placed: a suspended account pays nothing.
        if registry.person_status_locked(uow, order.payer_person_id) != "active":
            raise AppError("PERSON_SUSPENDED")
        if order.actor_person_id is not None:  # the binding may have ended since the order was placed
            source = uow.session.scalar(select(PaymentGrant.source).where(PaymentGrant.id == order.grant_id))
            recheck_actor(
                uow,
                actor_person_id=order.actor_person_id,
                payer_person_id=order.payer_person_id,
                source=source,
            )
        holder_pids = [
            pid
            for pid in family.mutual_aid_holders(uow, member_person_id=order.payer_person_id)
            if pid != order.payer_person_id
        ]
        # One round trip locks the payer's and the holders' accounts: the balances we split on stay true.
        locked = ledger.lock_accounts_of(uow, [order.payer_person_id, *holder_pids])
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
            _settle_codes(uow, keys, order.id, now)
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
        uow.session.execute(_MARK_PAID, {"order_pk": order.id, **paid})
        for attr, value in paid.items():
            set_committed_value(order, attr, value)
    webhooks.enqueue(
        uow,
        institution_id=institution_id,
        type="payment.paid",
        data=order_view(order),
        now=now,
        has_endpoint=has_endpoint,
    )
    faults.hit("pay.before_commit")
    return order


_SETTLEMENTS = TraceCodeSettlement.__table__
_SETTLE_CODES = {
    name: insert(_SETTLEMENTS)
    .on_conflict_do_nothing(index_elements=["code"], index_where=_SETTLEMENTS.c.released_at.is_(None))
    .returning(_SETTLEMENTS.c.id)
    for name, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


def _settle_codes(uow: UnitOfWork, keys: Sequence[str], order_id: int, now: datetime) -> None:
    """Claim the codes; the partial unique index allows one active settlement per code, system-wide."""
    rows = [{"code": k, "order_id": order_id, "settled_at": now} for k in keys]
    # One statement for all codes (insertmanyvalues batches the rows into one INSERT ... VALUES).
    # A concurrent settlement of the same code waits on the index entry, then lands here as a conflict.
    if len(uow.session.execute(_SETTLE_CODES[uow.dialect], rows).all()) != len(keys):
        raise AppError("TRACE_CODE_ALREADY_SETTLED")


def cancel_order(uow: UnitOfWork, *, pay_order_id: str, institution_id: int) -> PaymentOrder:
    """Revoke an unpaid order."""
    now = utcnow()
    order = _order_for_institution(uow, pay_order_id, institution_id)
    _transition(order, "cancelled")
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
        _transition(order, "cancelled")
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


def _paid_by_source(uow: UnitOfWork, order: PaymentOrder) -> dict[int, int]:
    """Net fen each personal account paid for this order so far (payment minus refunds), from the ledger."""
    rows = uow.session.execute(
        select(Entry.account_id, func.sum(Entry.amount_fen))
        .join(LedgerTransaction, LedgerTransaction.id == Entry.transaction_id)
        .join(Account, Account.id == Entry.account_id)
        .where(LedgerTransaction.order_id == order.id, Account.kind == "personal")
        .group_by(Entry.account_id)
    )
    return {acct: -int(total) for acct, total in rows}


def refund_order(
    uow: UnitOfWork,
    *,
    pay_order_id: str,
    institution_id: int,
    amount_fen: int | None,
    reason: str,
    trace_codes: Sequence[str] = (),
) -> Refund:
    """Refund all or part: insurance money first (mutual aid, then own account), cash last."""
    now = utcnow()
    order = _order_for_institution(uow, pay_order_id, institution_id)
    if order.status not in ("paid", "partially_refunded"):
        raise AppError("ORDER_STATE_CONFLICT", order_status=order.status)
    left = order.total_fen - order.refunded_fen
    amount = left if amount_fen is None else amount_fen
    if amount <= 0 or amount > left:
        raise AppError("REFUND_EXCEEDS_PAID", refundable_fen=left)
    own = ledger.personal_account(uow, order.payer_person_id)
    by_source = _paid_by_source(uow, order)
    own_left = by_source.pop(own.id, 0) if own else 0
    # Holders in the order the payment charged them (its entries' order), whatever the filings say now:
    # a holder who withdrew since still gets back what they paid, in their place.
    charged = _charge_order(uow, order)
    aid_left = [(a, by_source[a]) for a in charged if by_source.get(a)] + [
        (a, f) for a, f in by_source.items() if a not in charged and f
    ]
    cash_left = order.cash_pay_fen - order.cash_refunded_fen
    rs = money.split_refund(amount, account_left=own_left, mutual_aid_left=aid_left, cash_left=cash_left)
    # Which codes go back into circulation: the ones named, or all remaining on a final refund.
    active = {
        s.code: s
        for s in uow.session.scalars(
            select(TraceCodeSettlement).where(
                TraceCodeSettlement.order_id == order.id, TraceCodeSettlement.released_at.is_(None)
            )
        )
    }
    release = []
    for code in trace_codes:
        key = _gs1_key(code)
        if key not in active or key in release:
            raise AppError("TRACE_CODE_NOT_IN_ORDER")
        release.append(key)
    final = order.refunded_fen + amount == order.total_fen
    if final:
        release = list(active)
    elif release:
        # A released box may be sold again, so the refunds must have paid back every released box:
        # otherwise a 1-fen refund naming every code would put the whole order's boxes back on sale.
        price = _unit_price_by_key(uow, order)
        released_before = uow.session.scalars(
            select(TraceCodeSettlement.code).where(
                TraceCodeSettlement.order_id == order.id, TraceCodeSettlement.released_at.is_not(None)
            )
        ).all()
        value = sum(price.get(k, 0) for k in [*released_before, *release])
        if value > order.refunded_fen + amount:
            raise AppError("REFUND_TOO_SMALL_FOR_CODES", released_value_fen=value)
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
    _transition(order, "refunded" if final else "partially_refunded")
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
        data={**order_view(order), "refund": refund_view(refund)},
        now=now,
    )
    return refund


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


def _unit_price_by_key(uow: UnitOfWork, order: PaymentOrder) -> dict[str, int]:
    """Each traceability code's settlement key → the unit price of its line."""
    items = uow.session.scalars(select(OrderItem).where(OrderItem.order_id == order.id)).all()
    return {_gs1_key(code): it.unit_price_fen for it in items for code in (it.trace_codes or ())}


def refund_view(refund: Refund) -> dict[str, Any]:
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
    }


def order_for_reader(
    uow: UnitOfWork, pay_order_id: str, *, institution_id: int | None = None, person_id: int | None = None
) -> PaymentOrder:
    """GET: the owning institution, the payer, or the relative who acted for the payer while the
    binding still lets them read the payer's account; everyone else: not found."""
    order = uow.session.scalar(select(PaymentOrder).where(PaymentOrder.pay_order_id == pay_order_id))
    if order is None:
        raise AppError("ORDER_NOT_FOUND")
    if institution_id is not None and order.institution_id == institution_id:
        return order
    if person_id is not None and person_id == order.payer_person_id:
        return order
    if person_id is not None and person_id == order.actor_person_id:
        payer = registry.person_by_id(uow, order.payer_person_id)
        try:  # checked now: an ended binding ends the view of the member's orders (refunds included)
            family.acting_permission(
                uow, actor_person_id=person_id, member_psn_no=payer.psn_no, action="read_account"
            )
        except AppError:
            raise AppError("ORDER_NOT_FOUND") from None
        return order
    raise AppError("ORDER_NOT_FOUND")


def order_refunds(uow: UnitOfWork, order: PaymentOrder) -> list[Refund]:
    return list(uow.session.scalars(select(Refund).where(Refund.order_id == order.id).order_by(Refund.id)))


# ---------------------------------------------------------------------------------------------
# statements


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
