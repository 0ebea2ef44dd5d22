"""Paying a hospital settlement (issue 15): the split computed again under the running totals' and the
accounts' locks (final), the ledger legs of the funds, the totals counted. settlement.pay_order reads
the order (locked, with the payer's share-locked status) and dispatches here; placing the order is in
hospital.py, refunds in hospital_refunds.py.

The hot path's statements (docs/architecture.md "The hot-path rules"): prebuilt Core statements on
columns, no ORM object. Locks in the order every settlement and refund of the person takes them: the
order (FOR UPDATE), the payer's registry row (FOR SHARE), the year's totals row, the mutual-aid filings
(FOR SHARE), the personal accounts in id order, then supervision's lock of the person.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, literal, select

from benefits import policies
from benefits import split as sp
from benefits import totals as benefit_totals
from benefits.models import BenefitPolicy
from supervision import checks as supervision
from yibao.china_time import china_date
from yibao.db import UnitOfWork
from yibao.errors import AppError
from yibao.prepared import Prepared
from yibao.registry.models import Institution, Person

from . import ledger, orders, payers, webhooks
from .hospital import FUNDS, compute_split, fund_account
from .hospital_models import HospitalSettlement
from .hospital_views import SPLIT_FIELDS
from .models import Account, PaymentOrder


def _settlement_for_pay_stmt() -> Any:
    hs, persons, insts = HospitalSettlement.__table__, Person.__table__.c, Institution.__table__.c
    pol, accounts = BenefitPolicy.__table__, Account.__table__.c
    other = hs.alias("other")
    visited_today = (
        select(other.c.order_id)
        .where(
            other.c.person_id == hs.c.person_id,
            other.c.institution_id == hs.c.institution_id,
            other.c.day == bindparam("day"),
            other.c.counts_for_day.is_(True),
            other.c.order_id != hs.c.order_id,
        )
        .exists()
    )
    fund_ids = [
        select(accounts.id)
        .where(accounts.system_name == literal(f"{fund}:").concat(pol.c.region))
        .scalar_subquery()
        .label(f"{fund}_account_id")
        for fund in FUNDS
    ]
    policy_id = policies.applicable_id_of(persons.insured_region, persons.insurance_type, bindparam("year"))
    return (
        select(
            hs.c.med_type,
            hs.c.lines,
            persons.retired,
            persons.assistance_category,
            insts.level,
            pol.c.id.label("policy_id"),
            pol.c.version.label("policy_version"),
            pol.c.region.label("policy_region"),
            pol.c.created_at.label("policy_created_at"),
            *fund_ids,
            visited_today.label("visited_today"),
        )
        .select_from(
            hs.join(Person.__table__, persons.id == hs.c.person_id)
            .join(Institution.__table__, insts.id == hs.c.institution_id)
            .outerjoin(pol, pol.c.id == policy_id)
        )
        .where(hs.c.order_id == bindparam("order_id"))
    )


_SETTLEMENT_FOR_PAY = Prepared(_settlement_for_pay_stmt(), ("order_id", "day", "year"))
_HS, _ORDERS = HospitalSettlement.__table__, PaymentOrder.__table__
_SETTLED_COLUMNS = ("split", "counted", "policy_id", "policy_version", "year", "day", "counts_for_day")
_PAID_COLUMNS = ("status", "fund_pay_fen", "account_pay_fen", "mutual_aid_pay_fen", "cash_pay_fen")
_SETTLED = (
    _HS.update()
    .where(_HS.c.order_id == bindparam("order_pk"))
    .values({c: bindparam(f"hs_{c}") for c in _SETTLED_COLUMNS})
)
_PAID = (
    _ORDERS.update()
    .where(_ORDERS.c.id == bindparam("order_pk"))
    .values({c: bindparam(f"order_{c}") for c in (*_PAID_COLUMNS, "paid_at", "updated_at")})
)
# PostgreSQL: the three writes of a paid settlement in one statement (data-modifying CTEs run exactly
# once, to completion, whether or not the main statement reads them). SQLite has no such CTEs: three.
_SETTLED_PARAMS = ("order_pk", *(f"hs_{c}" for c in _SETTLED_COLUMNS))
_PAID_PARAMS = ("order_pk", *(f"order_{c}" for c in (*_PAID_COLUMNS, "paid_at", "updated_at")))
_COUNTED_SETTLED_PAID = Prepared(
    _PAID.add_cte(benefit_totals.WRITE.cte("totals_counted"), _SETTLED.cte("settlement_final")),
    (*benefit_totals.WRITE_PARAMS, *_SETTLED_PARAMS[1:], *_PAID_PARAMS),
)


def _write_paid(
    uow: UnitOfWork,
    order_id: int,
    totals: dict[str, Any],
    settled: dict[str, Any],
    paid: dict[str, Any],
) -> None:
    """Count the settlement in the locked totals row (`totals`: benefit_totals.write_params), record the
    final split in its hospital_settlements row and mark the order paid."""
    hs = {"order_pk": order_id, **{f"hs_{c}": v for c, v in settled.items()}}
    order = {"order_pk": order_id, **{f"order_{c}": v for c, v in paid.items()}}
    if uow.dialect == "postgresql":
        _COUNTED_SETTLED_PAID.run(uow, {**totals, **hs, **order})
        return
    for stmt, params in ((benefit_totals.WRITE, totals), (_SETTLED, hs), (_PAID, order)):
        uow.core().execute(stmt, params)


def _settlement_for_pay(uow: UnitOfWork, order_id: int, day: Any) -> Row:
    """One round trip, run after the totals lock (so a concurrent settlement of the same person, which
    held it, has committed its day): the order's settlement row (med_type, lines), the payer's split
    attributes (retired, assistance_category), the institution's level, the applicable policy version
    (policies.applicable_id_of: id, version, region, created_at; NULL when none applies), the funding
    account ids of that region (NULL until first used) and whether another paid, unrefunded outpatient
    order of the person at this institution is counted for `day` (visited_today)."""
    params = {"order_id": order_id, "day": day, "year": day.year}
    (row,) = _SETTLEMENT_FOR_PAY.execute(uow, params)
    return row


def pay(
    uow: UnitOfWork,
    order: Row,
    *,
    payer_status: str | None,
    may_have_holders: bool,
    keys: Sequence[str],
    has_endpoint: bool,
    clearing: int | None,
    cash: int | None,
    lines: Sequence[tuple[str, int]],
    now: datetime,
    rules_version: int | None = None,
) -> orders.CheckedOrder:
    """Pay a locked hospital order (`order`: its columns, as settlement.pay_order read them with the
    payer's status, share-locked): compute the split again under the totals and account locks (final);
    supervision's order rules again under the person's supervision lock (taken last, as for a pharmacy's
    pay), and the sale counted. `lines` are the order's (item_code, quantity); `rules_version` what the
    first statement read (supervision.rules_version_column): the rules come from the worker's cache.

    Raises: ORDER_STATE_CONFLICT, ORDER_EXPIRED, PERSON_SUSPENDED, NOT_PERMITTED, BINDING_NOT_ACTIVE,
    BENEFIT_POLICY_MISSING, AMOUNT_TOO_LARGE, SUPERVISION_BLOCKED, TRACE_CODE_ALREADY_SETTLED.
    """
    orders.check_transition(order.status, "paid")
    if now - order.created_at > orders.PAY_WINDOW:
        raise AppError("ORDER_EXPIRED")
    if payer_status != "active":
        raise AppError("PERSON_SUSPENDED")
    payers.recheck_order_actor(uow, order)
    person_id = order.payer_person_id
    day = china_date(now)
    totals = benefit_totals.lock_values(uow, person_id, day.year, now)  # before the accounts, as in refunds
    got = _settlement_for_pay(uow, order.id, day)
    if got.policy_id is None:
        raise AppError("BENEFIT_POLICY_MISSING")
    policy = policies.parsed(uow, got.policy_id, got.policy_version, got.policy_created_at)
    holder_pids = payers.holder_person_ids(uow, person_id, filed=may_have_holders)
    locked = ledger.lock_accounts_of(uow, [person_id, *holder_pids])
    own = locked.get(person_id)
    holders = [locked[pid] for pid in holder_pids if pid in locked]
    s = compute_split(
        policy,
        med_type=got.med_type,
        level=got.level,
        person=sp.Person(retired=got.retired, assistance_category=got.assistance_category),
        lines=[sp.Line(ln["category"], ln["quantity"], ln["unit_price_fen"]) for ln in got.lines],
        totals=benefit_totals.as_totals(totals),
        deductible_applies=got.med_type == "inpatient" or not got.visited_today,
        own_balance=own[1] if own else 0,
        holders=holders,
    )
    verdict = supervision.check_order(
        uow,
        person_id=person_id,
        institution_id=order.institution_id,
        lines=lines,
        stage="pay",
        order_ref=order.pay_order_id,
        now=now,
        rules_version=rules_version,
    )
    supervision.record_sale(
        uow,
        person_id=person_id,
        institution_id=order.institution_id,
        lines=lines,
        order_ref=order.pay_order_id,
        at=now,
    )
    if keys:
        from .settlement import settle_codes  # settlement.py dispatches here: imported at call time

        settle_codes(uow, keys, order.id, now)
    if clearing is None or cash is None:
        clearing, cash = ledger.settlement_accounts(uow, order.institution_id)
    region = got.policy_region
    legs = [
        (getattr(got, f"{f}_account_id") or fund_account(uow, f, region), -getattr(s, f"{f}_pay_fen"))
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
    totals_after = benefit_totals.added(totals, counted, deductible=(s.med_type, s.deductible_fen), sign=1)
    split = {**s.fields(), "policy_region": region}
    settled = {
        "split": split,
        "counted": counted,
        "policy_id": got.policy_id,
        "policy_version": got.policy_version,
        "year": day.year,
        "day": day,
        "counts_for_day": s.med_type == "outpatient",
    }
    paid = {
        "status": "paid",
        "fund_pay_fen": s.fund_pay_fen,
        "account_pay_fen": s.account_pay_fen,
        "mutual_aid_pay_fen": s.mutual_aid_pay_fen,
        "cash_pay_fen": s.cash_pay_fen,
        "paid_at": now,
        "updated_at": now,
    }
    _write_paid(uow, order.id, benefit_totals.write_params(totals.id, totals_after, now), settled, paid)
    # The answer from what is in memory: the split's view fields ride on the order's values.
    paid_order = orders.OrderValues.of(order, **paid, split_view={k: split[k] for k in SPLIT_FIELDS})
    webhooks.enqueue(
        uow,
        institution_id=order.institution_id,
        type="payment.paid",
        data=orders.order_view(paid_order),
        now=now,
        has_endpoint=has_endpoint,
    )
    return orders.CheckedOrder(paid_order, verdict.warnings)
