"""Hospital settlement (issue 15, 一站式结算): placing and paying an order whose bill is split between the
pooled fund, serious-illness insurance, medical assistance and the person (benefits/split.py). Refunds
are in hospital_refunds.py, what the split adds to the views in hospital_views.py.

orders.py and settlement.py dispatch here (refunds.py to hospital_refunds.py) for orders with a
`med_type`; v1 orders never come here.
Ledger: one funding account per fund and policy region (system_name `hifp:532900`, `hifmi:…`, `maf:…`)
pays beside the personal accounts and cash; the institution's clearing account receives the total.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from benefits import policies
from benefits import split as sp
from benefits import totals as benefit_totals
from supervision import checks as supervision
from voucher import ec_tokens as voucher
from yibao.china_time import china_date
from yibao.db import UnitOfWork, utcnow
from yibao.errors import AppError
from yibao.registry import services as registry
from yibao.registry.models import Institution, Person

from . import grants, ledger, orders, payers, webhooks
from .errors import HOSPITAL_SCOPE_NOT_ALLOWED
from .hospital_models import HospitalSettlement
from .models import Account, OrderItem, PaymentGrant, PaymentOrder

SETTLEMENT_BUSINESS_TYPE = "01301"


def _scope_not_allowed() -> AppError:
    """422 SCOPE_NOT_ALLOWED with the hospital order's meaning (payments/errors.py)."""
    return AppError(HOSPITAL_SCOPE_NOT_ALLOWED)


FUNDS = ("hifp", "hifmi", "maf")


@dataclass(frozen=True)
class HospitalItemIn:
    item_code: str
    item_name: str
    category: str
    quantity: int
    unit_price_fen: int
    trace_codes: tuple[str, ...] = ()


def _use_settlement_token(uow: UnitOfWork, inst: Institution, ec_token: str, now: datetime) -> PaymentGrant:
    """Record the ec_token as used; it must come from a 01301 (settlement) verification at this hospital.

    Raises: SCOPE_NOT_ALLOWED, INSTITUTION_NOT_DESIGNATED, PAY_AUTH_ALREADY_USED, EC_TOKEN_INVALID.
    """
    ec = voucher.resolve_ec_token(uow, ec_token, institution_id=inst.id)
    if ec.business_type != SETTLEMENT_BUSINESS_TYPE:
        raise _scope_not_allowed()
    if not inst.designated_for(SETTLEMENT_BUSINESS_TYPE):
        raise AppError("INSTITUTION_NOT_DESIGNATED")
    return grants.grant_of_ec_token(uow, ec_token, ec, now)


def _lines(items: Sequence[HospitalItemIn]) -> list[sp.Line]:
    return [sp.Line(it.category, it.quantity, it.unit_price_fen) for it in items]


def _first_outpatient_today(
    uow: UnitOfWork, person_id: int, institution_id: int, day: Any, exclude: int
) -> bool:
    """No other paid, unrefunded outpatient order of the person at this institution on this Beijing day."""
    other = uow.session.scalar(
        select(HospitalSettlement.order_id)
        .where(
            HospitalSettlement.person_id == person_id,
            HospitalSettlement.institution_id == institution_id,
            HospitalSettlement.day == day,
            HospitalSettlement.counts_for_day.is_(True),
            HospitalSettlement.order_id != exclude,
        )
        .limit(1)
    )
    return other is None


def _compute(
    uow: UnitOfWork,
    *,
    person: Person,
    inst: Institution,
    med_type: str,
    lines: Sequence[sp.Line],
    found: policies.Found,
    totals: sp.Totals,
    day: Any,
    order_id: int,
    own_balance: int,
    holders: Sequence[tuple[int, int]],
) -> sp.Split:
    try:
        return sp.compute(
            found.policy,
            med_type=med_type,
            level=inst.level,
            person=sp.Person(retired=person.retired, assistance_category=person.assistance_category),
            lines=lines,
            totals=totals,
            deductible_applies=med_type == "inpatient"
            or _first_outpatient_today(uow, person.id, inst.id, day, order_id),
            account_balance_fen=own_balance,
            holder_balances=holders,
        )
    except sp.AmountTooLarge as exc:
        raise AppError("AMOUNT_TOO_LARGE") from exc


def _apply_split(order: PaymentOrder, s: sp.Split) -> None:
    order.fund_pay_fen = s.fund_pay_fen
    order.account_pay_fen = s.account_pay_fen
    order.mutual_aid_pay_fen = s.mutual_aid_pay_fen
    order.cash_pay_fen = s.cash_pay_fen


def create_order(
    uow: UnitOfWork,
    *,
    institution_id: int,
    ec_token: str,
    merchant_order_no: str,
    med_type: str,
    items: Sequence[HospitalItemIn],
) -> orders.CheckedOrder:
    """Place a hospital order; its split is provisional (pay computes it again under lock). Fund
    supervision's order rules count its items by `item_code`, as a pharmacy's by `drug_code`.

    Raises: SCOPE_NOT_ALLOWED (not a hospital, or not a 01301 ec_token), TRACE_CODE_COUNT_MISMATCH,
    TRACE_CODE_MALFORMED, TRACE_CODE_DUPLICATE, AMOUNT_TOO_LARGE, EC_TOKEN_INVALID,
    INSTITUTION_NOT_DESIGNATED, PAY_AUTH_ALREADY_USED, PERSON_SUSPENDED, NOT_PERMITTED, BINDING_NOT_ACTIVE,
    TRACE_CODE_ALREADY_SETTLED, BENEFIT_POLICY_MISSING, SUPERVISION_BLOCKED, MERCHANT_ORDER_EXISTS.
    """
    now = utcnow()
    inst = uow.session.get(Institution, institution_id)
    assert inst is not None
    if inst.kind != "hospital":
        raise _scope_not_allowed()
    v1_items = [
        orders.ItemIn(it.item_code, it.item_name, False, it.quantity, it.unit_price_fen, it.trace_codes)
        for it in items
    ]
    _, total = orders.validate_items(v1_items, 0)
    lines = _lines(items)
    grant = _use_settlement_token(uow, inst, ec_token, now)
    payer = registry.person_by_id(uow, grant.person_id)
    if payer is None or payer.status != "active":
        raise AppError("PERSON_SUSPENDED")
    payers.recheck_actor(
        uow, actor_person_id=grant.actor_person_id, payer_person_id=payer.id, source=grant.source
    )
    if orders._any_settled(uow, v1_items):  # noqa: SLF001  (the v1 check, shared)
        raise AppError("TRACE_CODE_ALREADY_SETTLED")
    day = china_date(now)
    found = policies.applicable(
        uow, insured_region=payer.insured_region, insurance_type=payer.insurance_type, year=day.year
    )
    own = ledger.personal_account(uow, payer.id)
    holders = payers.holder_accounts(uow, payer.id)
    s = _compute(
        uow,
        person=payer,
        inst=inst,
        med_type=med_type,
        lines=lines,
        found=found,
        totals=benefit_totals.as_totals(benefit_totals.read(uow, payer.id, day.year)),
        day=day,
        order_id=0,
        own_balance=own.balance_fen if own else 0,
        holders=[(a.id, a.balance_fen) for a in holders],
    )
    pay_order_id = "po_" + secrets.token_urlsafe(18)
    verdict = supervision.check_order(
        uow,
        person_id=payer.id,
        institution_id=inst.id,
        lines=[(it.item_code, it.quantity) for it in items],
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
        purpose="counter",
        merchant_order_no=merchant_order_no,
        account_only=False,
        status="created",
        drug_fen=total,
        delivery_fee_fen=0,
        total_fen=total,
        med_type=med_type,
        created_at=now,
        updated_at=now,
    )
    _apply_split(order, s)
    try:
        with uow.session.begin_nested():
            uow.session.add(order)
    except IntegrityError as exc:
        raise AppError("MERCHANT_ORDER_EXISTS") from exc
    uow.session.add_all(
        OrderItem(
            order_id=order.id,
            line_no=i + 1,
            drug_code=it.item_code,
            drug_name=it.item_name,
            otc=False,
            quantity=it.quantity,
            unit_price_fen=it.unit_price_fen,
            trace_codes=list(it.trace_codes),
        )
        for i, it in enumerate(items)
    )
    uow.session.add(
        HospitalSettlement(
            order_id=order.id,
            med_type=med_type,
            year=day.year,
            policy_id=found.row.id,
            policy_version=found.row.version,
            lines=[
                {"category": ln.category, "quantity": ln.quantity, "unit_price_fen": ln.unit_price_fen}
                for ln in lines
            ],
            split={**s.fields(), "policy_region": found.row.region},
            day=day,
            institution_id=inst.id,
            person_id=payer.id,
            counts_for_day=False,
            created_at=now,
        )
    )
    uow.session.flush()
    return orders.CheckedOrder(order, verdict.warnings)


def fund_account(uow: UnitOfWork, fund: str, region: str) -> int:
    """The funding account of one fund of one pooling region (`hifp:532900`), created on first use."""
    name = f"{fund}:{region}"
    acct_id = uow.session.scalar(select(Account.id).where(Account.system_name == name))
    if acct_id is not None:
        return acct_id
    try:
        with uow.session.begin_nested():
            acct = Account(kind="funding", system_name=name, balance_fen=0)
            uow.session.add(acct)
        return acct.id
    except IntegrityError:
        return uow.session.scalar(select(Account.id).where(Account.system_name == name))


def pay(
    uow: UnitOfWork,
    order: PaymentOrder,
    *,
    keys: Sequence[str],
    has_endpoint: bool,
    clearing: int | None,
    cash: int | None,
    lines: Sequence[tuple[str, int]],
    now: datetime,
    rules_version: int | None = None,
) -> orders.CheckedOrder:
    """Pay a locked hospital order: compute the split again under the totals and account locks (final);
    supervision's order rules again under the person's supervision lock (taken last, as for a pharmacy's
    pay), and the sale counted. `lines` are the order's (item_code, quantity); `rules_version` what the
    first statement read (supervision.rules_version_column).

    Raises: ORDER_STATE_CONFLICT, ORDER_EXPIRED, PERSON_SUSPENDED, NOT_PERMITTED, BINDING_NOT_ACTIVE,
    BENEFIT_POLICY_MISSING, SUPERVISION_BLOCKED, TRACE_CODE_ALREADY_SETTLED.
    """
    orders.transition(order, "paid")
    if now - order.created_at > orders.PAY_WINDOW:
        raise AppError("ORDER_EXPIRED")
    if registry.person_status_locked(uow, order.payer_person_id) != "active":
        raise AppError("PERSON_SUSPENDED")
    if order.actor_person_id is not None:
        source = uow.session.scalar(select(PaymentGrant.source).where(PaymentGrant.id == order.grant_id))
        payers.recheck_actor(
            uow, actor_person_id=order.actor_person_id, payer_person_id=order.payer_person_id, source=source
        )
    hs = uow.session.get(HospitalSettlement, order.id)
    assert hs is not None
    person = registry.person_by_id(uow, order.payer_person_id)
    inst = uow.session.get(Institution, order.institution_id)
    assert person is not None and inst is not None
    day = china_date(now)
    found = policies.applicable(
        uow, insured_region=person.insured_region, insurance_type=person.insurance_type, year=day.year
    )
    row = benefit_totals.lock(uow, person.id, day.year)  # before the accounts, as in refunds
    holder_pids = payers.holder_person_ids(uow, person.id)
    locked = ledger.lock_accounts_of(uow, [person.id, *holder_pids])
    own = locked.get(person.id)
    holders = [locked[pid] for pid in holder_pids if pid in locked]
    bill = [sp.Line(ln["category"], ln["quantity"], ln["unit_price_fen"]) for ln in hs.lines]
    s = _compute(
        uow,
        person=person,
        inst=inst,
        med_type=hs.med_type,
        lines=bill,
        found=found,
        totals=benefit_totals.as_totals(row),
        day=day,
        order_id=order.id,
        own_balance=own[1] if own else 0,
        holders=holders,
    )
    verdict = supervision.check_order(
        uow,
        person_id=person.id,
        institution_id=inst.id,
        lines=lines,
        stage="pay",
        order_ref=order.pay_order_id,
        now=now,
        rules_version=rules_version,
    )
    supervision.record_sale(
        uow, person_id=person.id, institution_id=inst.id, lines=lines, order_ref=order.pay_order_id, at=now
    )
    if keys:
        from .settlement import settle_codes  # settlement.py dispatches here: imported at call time

        settle_codes(uow, keys, order.id, now)
    if clearing is None or cash is None:
        clearing, cash = ledger.settlement_accounts(uow, order.institution_id)
    region = found.row.region
    legs = [
        (fund_account(uow, f, region), -getattr(s, f"{f}_pay_fen"))
        for f in FUNDS
        if getattr(s, f"{f}_pay_fen")
    ]
    legs += [(acct_id, -fen) for acct_id, fen in s.mutual_aid]
    if own:
        legs.append((own[0], -s.account_pay_fen))
    legs += [(cash, -s.cash_pay_fen), (clearing, s.total_fen)]
    ledger.post(
        uow,
        kind="payment",
        legs=legs,
        order_id=order.id,
        personal_ids=([own[0]] if own else []) + [a for a, _ in holders],
        at=now,
    )
    counted = s.counted()
    benefit_totals.add(row, counted, deductible=(s.med_type, s.deductible_fen), sign=1)
    hs.split = {**s.fields(), "policy_region": region}
    hs.counted = counted
    hs.policy_id, hs.policy_version, hs.year, hs.day = found.row.id, found.row.version, day.year, day
    hs.counts_for_day = s.med_type == "outpatient"
    _apply_split(order, s)
    order.paid_at = now
    order.updated_at = now
    uow.session.flush()
    webhooks.enqueue(
        uow,
        institution_id=order.institution_id,
        type="payment.paid",
        data=orders.order_view(order),
        now=now,
        has_endpoint=has_endpoint,
    )
    return orders.CheckedOrder(order, verdict.warnings)
