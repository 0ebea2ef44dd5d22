"""Hospital settlement totals per fund and insurance type for a period (the national platform's 3201
对总账 totals), and the operators' check of those totals against the fund ledger accounts.

A period is a range of Beijing calendar dates, both ends included. A settlement counts on the day it
was paid, a refund on the day it was made (a refunded order counts once in each), as in the daily
statement (statements.py). Amounts come from the settlement's final split (HospitalSettlement.split)
and the order's person part; a hospital refund is whole, so it gives back exactly the split's funds.
Sums in SQL: an institution's statement reads payment_orders through (institution_id, paid_at) and
refunds through created_at; the operators' reconciliation has no index on paid_at alone and reads the
orders of every institution (an operator's report, not a hot path).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import func, or_, select

from yibao import china_time
from yibao.db import UnitOfWork
from yibao.registry.models import Person

from .hospital import FUNDS
from .hospital_models import HospitalSettlement
from .models import Account, Entry, PaymentOrder, Refund

# The 3201 names of the amounts (docs/hospital.md maps them): medfee_sumamt, hifp_pay, hifmi_pay, maf_pay,
# fund_pay_sumamt, acct_pay, acct_mulaid_pay, psn_cash_pay.
AMOUNTS = (
    "total_fen",
    "hifp_pay_fen",
    "hifmi_pay_fen",
    "maf_pay_fen",
    "fund_pay_fen",
    "account_pay_fen",
    "mutual_aid_pay_fen",
    "cash_pay_fen",
)


def bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[first instant, instant after the last) of a Beijing date range, both dates included, as UTC."""
    return china_time.start_of_day(start), china_time.day_bounds(end)[1]


_REGION = HospitalSettlement.split["policy_region"].as_string()


def _grouped(uow: UnitOfWork, count: Any, amounts: list[Any], when: list[Any]) -> list[Any]:
    """(insurance_type, policy region, count, *amounts) of hospital orders, per insurance type and region."""
    o = PaymentOrder
    funds = [func.coalesce(func.sum(HospitalSettlement.split[f"{f}_pay_fen"].as_integer()), 0) for f in FUNDS]
    total, *rest = (func.coalesce(func.sum(a), 0) for a in amounts)  # rest: fund_pay and the person's part
    q = (
        select(Person.insurance_type, _REGION, func.count(count), total, *funds, *rest)
        .select_from(o)
        .join(HospitalSettlement, HospitalSettlement.order_id == o.id)
        .join(Person, Person.id == o.payer_person_id)
        .where(*when)
        .group_by(Person.insurance_type, _REGION)
    )
    return list(uow.session.execute(q))


def _settled(uow: UnitOfWork, lo: datetime, hi: datetime, institution_id: int | None) -> list[Any]:
    o = PaymentOrder
    when = [o.paid_at >= lo, o.paid_at < hi]
    when += [o.institution_id == institution_id] if institution_id is not None else []
    rest = [o.fund_pay_fen, o.account_pay_fen, o.mutual_aid_pay_fen, o.cash_pay_fen]
    return _grouped(uow, o.id, [o.total_fen, *rest], when)


def _refunded(uow: UnitOfWork, lo: datetime, hi: datetime, institution_id: int | None) -> list[Any]:
    """A hospital refund is whole: it gives back the split's funds and the order's fund_pay_fen."""
    r, o = Refund, PaymentOrder
    when = [r.order_id == o.id, r.created_at >= lo, r.created_at < hi]
    when += [r.institution_id == institution_id] if institution_id is not None else []
    amounts = [
        r.amount_fen,
        o.fund_pay_fen,
        r.account_refund_fen - r.mutual_aid_refund_fen,
        r.mutual_aid_refund_fen,
        r.cash_refund_fen,
    ]
    return _grouped(uow, r.id, amounts, when)


def _zero() -> dict[str, int]:
    return {"count": 0, **dict.fromkeys(AMOUNTS, 0)}


def _rows(settled: list[Any], refunded: list[Any]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for side, rows in (("settlements", settled), ("refunds", refunded)):
        for itype, region, count, *amounts in rows:
            g = groups.setdefault(
                (itype, region),
                {"insurance_type": itype, "policy_region": region}
                | {"settlements": _zero(), "refunds": _zero()},
            )
            g[side] = {"count": int(count), **dict(zip(AMOUNTS, map(int, amounts), strict=True))}
    out = []
    for key in sorted(groups):
        g = groups[key]
        g["net"] = {a: g["settlements"][a] - g["refunds"][a] for a in AMOUNTS}
        out.append(g)
    return out


def _sum(rows: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {"settlements": _zero(), "refunds": _zero()}
    for row in rows:
        for side in ("settlements", "refunds"):
            for k, v in row[side].items():
                total[side][k] += v
    total["net"] = {a: total["settlements"][a] - total["refunds"][a] for a in AMOUNTS}
    return total


def fund_totals(
    uow: UnitOfWork, *, start: date, end: date, institution_id: int | None = None
) -> dict[str, Any]:
    """The 3201 totals of hospital settlements from `start` to `end` (Beijing dates, included): one row
    per insurance type and policy (pooling) region, each with settlements, refunds and net, and the
    total over the rows. Scoped to one institution when `institution_id` is given."""
    lo, hi = bounds(start, end)
    rows = _rows(_settled(uow, lo, hi, institution_id), _refunded(uow, lo, hi, institution_id))
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "timezone": "Asia/Shanghai",
        "rows": rows,
        "total": _sum(rows),
    }


def _ledger_by_fund_account(uow: UnitOfWork, lo: datetime, hi: datetime) -> dict[str, int]:
    """What each fund account (`hifp:532900`, …) paid out in the period, net of refunds, from its entries."""
    names = or_(*(Account.system_name.like(f"{f}:%") for f in FUNDS))
    rows = uow.session.execute(
        select(Account.system_name, func.coalesce(func.sum(Entry.amount_fen), 0))
        .join(Entry, Entry.account_id == Account.id)
        .where(Account.kind == "funding", names, Entry.created_at >= lo, Entry.created_at < hi)
        .group_by(Account.system_name)
    )
    return {name: -int(total) for name, total in rows}


def fund_reconciliation(uow: UnitOfWork, *, start: date, end: date) -> dict[str, Any]:
    """The period's fund totals of every hospital settlement against the fund ledger accounts: one row per
    fund and policy region with what the settlements and refunds say (net) and what the account's
    entries say; `reconciled` when every row agrees. Also the 3201 rows per insurance type."""
    lo, hi = bounds(start, end)
    totals = fund_totals(uow, start=start, end=end)
    by_account: dict[str, dict[str, Any]] = {}
    for row in totals["rows"]:
        for f in FUNDS:
            name = f"{f}:{row['policy_region']}"
            acc = by_account.setdefault(
                name,
                {"fund": f, "region": row["policy_region"], "paid_fen": 0, "refunded_fen": 0},
            )
            acc["paid_fen"] += row["settlements"][f"{f}_pay_fen"]
            acc["refunded_fen"] += row["refunds"][f"{f}_pay_fen"]
    ledger = _ledger_by_fund_account(uow, lo, hi)
    for name in ledger.keys() - by_account.keys():  # ledger movement no settlement explains
        fund, _, region = name.partition(":")
        by_account[name] = {"fund": fund, "region": region, "paid_fen": 0, "refunded_fen": 0}
    funds = []
    order = sorted(by_account, key=lambda n: (by_account[n]["region"], FUNDS.index(by_account[n]["fund"])))
    for name in order:
        acc = by_account[name]
        net, moved = acc["paid_fen"] - acc["refunded_fen"], ledger.get(name, 0)
        if not (acc["paid_fen"] or acc["refunded_fen"]) and name not in ledger:
            continue  # a fund this region's settlements never touched
        acc.update(account=name, net_fen=net, ledger_fen=moved, reconciled=moved == net)
        funds.append(acc)
    return {
        "from": totals["from"],
        "to": totals["to"],
        "timezone": totals["timezone"],
        "funds": funds,
        "by_insurance_type": totals["rows"],
        "reconciled": all(f["reconciled"] for f in funds),
    }
