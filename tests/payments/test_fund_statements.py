"""Fund statements (the 3201 对总账 totals) and the fund reconciliation (issue 15.4), with numbers to check by
hand. Policy POLICY_DOC (tests/benefits/support.py), region 532900, one bill of 20000 fen (category A):

* employee at the tertiary hospital, first visit: deductible 5000, hifp (20000 - 5000) x 50 % = 7500, the
  person's 12500 from the account (10000) and cash (2500);
* the same employee's second visit that day: no deductible, hifp 20000 x 50 % = 10000, cash 10000 (the
  account is empty) — then refunded whole;
* a dibao resident at the secondary hospital: hifp (20000 - 5000) x 60 % = 9000, maf (20000 - 9000) x 70 %
  = 7700, cash 3300.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from payments import ledger
from payments.fund_statements import AMOUNTS
from payments.hospital import fund_account
from payments.models import Account
from tests.payments.test_hospital import policy, settle
from tests.support import problem
from yibao.china_time import china_date
from yibao.db import db, utcnow

TODAY = china_date(utcnow())
PERIOD = {"from": str(TODAY - timedelta(days=30)), "to": str(TODAY)}
ZERO = dict.fromkeys(AMOUNTS, 0)  # total_fen, hifp_pay_fen, …, cash_pay_fen


def amounts(count=None, **kw):
    out = {**ZERO, **kw}
    return out if count is None else {"count": count, **out}


@pytest.fixture
def settled(app, yb, pay):
    policy(yb)
    policy(yb, itype="resident")
    tertiary = yb.institution(kind="hospital", name="州医院", level="tertiary")
    secondary = yb.institution(kind="hospital", name="县医院")
    employee = yb.person(balance=10000)
    resident = yb.person(insurance_type="resident")
    assert (
        yb.admin("PATCH", f"/persons/{resident.psn_no}", {"assistance_category": "dibao"}).status_code == 200
    )
    _, first = settle(app, yb, pay, tertiary, employee)
    _, second = settle(app, yb, pay, tertiary, employee)
    _, aid = settle(app, yb, pay, secondary, resident)
    assert (first["hifp_pay_fen"], second["hifp_pay_fen"], aid["maf_pay_fen"]) == (7500, 10000, 7700)
    assert pay.refund(tertiary, second["pay_order_id"], {"reason": "退费"}).status_code == 201
    return tertiary, secondary


def statement(yb, inst, query=PERIOD):
    return yb.as_institution(
        inst, "GET", "/statements/funds", query="&".join(f"{k}={v}" for k, v in query.items())
    )


EMPLOYEE_ROW = {
    "insurance_type": "employee",
    "policy_region": "532900",
    "settlements": amounts(2, total_fen=40000, hifp_pay_fen=17500, fund_pay_fen=17500, account_pay_fen=10000,
                           cash_pay_fen=12500),
    "refunds": amounts(1, total_fen=20000, hifp_pay_fen=10000, fund_pay_fen=10000, cash_pay_fen=10000),
    "net": amounts(total_fen=20000, hifp_pay_fen=7500, fund_pay_fen=7500, account_pay_fen=10000,
                   cash_pay_fen=2500),
}  # fmt: skip
RESIDENT_ROW = {
    "insurance_type": "resident",
    "policy_region": "532900",
    "settlements": amounts(1, total_fen=20000, hifp_pay_fen=9000, maf_pay_fen=7700, fund_pay_fen=16700,
                           cash_pay_fen=3300),
    "refunds": amounts(0),
    "net": amounts(total_fen=20000, hifp_pay_fen=9000, maf_pay_fen=7700, fund_pay_fen=16700,
                   cash_pay_fen=3300),
}  # fmt: skip


def test_institution_statement_per_insurance_type(yb, settled):
    tertiary, secondary = settled
    r = statement(yb, tertiary)
    assert r.status_code == 200, r.get_json()
    got = r.get_json()
    assert (got["org_id"], got["from"], got["to"], got["timezone"]) == (
        tertiary.org_id,
        PERIOD["from"],
        PERIOD["to"],
        "Asia/Shanghai",
    )
    assert got["rows"] == [EMPLOYEE_ROW]
    assert got["total"] == {k: EMPLOYEE_ROW[k] for k in ("settlements", "refunds", "net")}
    assert statement(yb, secondary).get_json()["rows"] == [RESIDENT_ROW]
    before = {"from": str(TODAY - timedelta(days=10)), "to": str(TODAY - timedelta(days=1))}
    got = statement(yb, tertiary, before).get_json()
    assert got["rows"] == [] and got["total"]["settlements"] == amounts(0)


def test_reconciliation_per_fund_and_region(app, yb, settled):
    r = yb.admin("GET", "/ledger/reconciliation/funds", query_string=PERIOD)
    assert r.status_code == 200, r.get_json()
    got = r.get_json()
    assert got["funds"] == [
        {"fund": "hifp", "region": "532900", "account": "hifp:532900", "paid_fen": 26500,
         "refunded_fen": 10000, "net_fen": 16500, "ledger_fen": 16500, "reconciled": True},
        {"fund": "maf", "region": "532900", "account": "maf:532900", "paid_fen": 7700, "refunded_fen": 0,
         "net_fen": 7700, "ledger_fen": 7700, "reconciled": True},
    ]  # fmt: skip
    assert got["by_insurance_type"] == [EMPLOYEE_ROW, RESIDENT_ROW] and got["reconciled"] is True
    # A posting on a fund account that no settlement explains is found.
    with app.app_context(), db.uow() as uow:
        fund = uow.session.scalar(select(Account.id).where(Account.system_name == "hifp:532900"))
        other = fund_account(uow, "hifmi", "110000")  # a fund account no settlement used
        ledger.post(uow, kind="payment", legs=[(fund, -100), (other, 100)])
        uow.commit()
    got = yb.admin("GET", "/ledger/reconciliation/funds", query_string=PERIOD).get_json()
    assert got["reconciled"] is False
    checks = {f["account"]: (f["net_fen"], f["ledger_fen"], f["reconciled"]) for f in got["funds"]}
    assert checks == {
        "hifmi:110000": (0, -100, False),
        "hifp:532900": (16500, 16600, False),
        "maf:532900": (7700, 7700, True),
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "2026-03-02", "to": "2026-03-01"}, "to"),
        ({"from": "2025-01-01", "to": "2026-01-02"}, "to"),  # 367 days
        ({"to": "2026-03-01"}, "from"),
        ({"from": "2026-02-30", "to": "2026-03-01"}, "from"),
    ],
)
def test_bad_periods(yb, pay, query, field):
    inst = yb.institution(kind="hospital", name="州医院")
    err = problem(statement(yb, inst, query), 422, "VALIDATION_FAILED")
    assert field in err["errors"]
    err = problem(
        yb.admin("GET", "/ledger/reconciliation/funds", query_string=query), 422, "VALIDATION_FAILED"
    )
    assert field in err["errors"]


def test_who_may_read(yb, client):
    problem(client.get("/api/v1/statements/funds", query_string=PERIOD), 401, "INSTITUTION_AUTH_FAILED")
    problem(
        client.get("/api/v1/admin/ledger/reconciliation/funds", query_string=PERIOD), 401, "ADMIN_AUTH_FAILED"
    )
    a_year = {"from": "2026-01-01", "to": "2026-12-31"}  # 365 days: allowed
    assert yb.admin("GET", "/ledger/reconciliation/funds", query_string=a_year).get_json()["funds"] == []
