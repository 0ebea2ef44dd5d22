"""Cross-region hospital settlement (issue 15.5): a person insured elsewhere settles under the policy of
their insured region when a cross-region filing covers the hospital's region; otherwise the scan is
REGION_NOT_COVERED and no order can be placed. Everything goes through the real scan (POST /verifications)."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import func, select

from payments.models import PaymentOrder
from tests.benefits.support import policy_doc
from tests.payments.test_hospital import YEAR, body, policy
from tests.support import problem
from yibao.db import db, utcnow

# Beijing's own policy differs from Dali's (532900, POLICY_DOC: tertiary outpatient 5000 deductible, 50 %),
# so the numbers show which one applied.
BEIJING = policy_doc(**{"outpatient.deductible_fen.tertiary": 0, "outpatient.ratio_pct.tertiary": 80})
CONSULT = [
    {"item_code": "A001", "item_name": "诊查费", "category": "A", "quantity": 1, "unit_price_fen": 20000}
]


def scan(yb, inst, p):
    qr = yb.as_user(p, "POST", "/vouchers").get_json()["qr_content"]
    return yb.as_institution(
        inst,
        "POST",
        "/verifications",
        {
            "qr_content": qr,
            "business_type": "01301",
            "operator_id": "op-1",
            "operator_name": "收费员",
            "device_id": "his-1",
            "out_biz_no": "biz-" + secrets.token_hex(6),
        },
    )


def settle(yb, pay, inst, p):
    r = scan(yb, inst, p)
    assert r.status_code == 200, r.get_json()
    r = pay.create(inst, body(r.get_json()["ec_token"], items=CONSULT))
    assert r.status_code == 201, r.get_json()
    o = r.get_json()
    r = pay.pay(inst, o["pay_order_id"])
    assert r.status_code == 200, r.get_json()
    return o, r.get_json()


def orders_count(app) -> int:
    with app.app_context(), db.uow(readonly=True) as uow:
        return uow.session.scalar(select(func.count(PaymentOrder.id)))


def test_filed_person_settles_under_insured_region_policy(app, yb, pay):
    policy(yb, "532900")
    policy(yb, "110000", doc=BEIJING)
    beijing_hospital = yb.institution(kind="hospital", region="110105", name="北京朝阳医院", level="tertiary")
    local = yb.person(region="110105", balance=0)
    _, paid_local = settle(yb, pay, beijing_hospital, local)
    # Beijing's own insured: deductible 0, 20000 x 80 % = 16000
    assert (paid_local["deductible_fen"], paid_local["hifp_pay_fen"]) == (0, 16000)

    dali = yb.person(region="532901", balance=0)  # a Dali county; its prefecture's policy 532900 applies
    r = yb.admin("POST", f"/persons/{dali.psn_no}/cross-region-filings", {"region": "110000"})
    assert r.status_code == 201, r.get_json()
    o, paid = settle(yb, pay, beijing_hospital, dali)
    # Dali's policy, not Beijing's: deductible 5000, (20000 - 5000) x 50 % = 7500
    for got in (o, paid):
        assert (got["deductible_fen"], got["hifp_pay_fen"], got["cash_pay_fen"]) == (5000, 7500, 12500)
    got = yb.as_user(dali, "GET", "/accounts/me/benefits").get_json()
    assert (got["policy_region"], got["hifp_outpatient_fen"]) == ("532900", 7500)
    pay.reconcile()


def test_no_filing_is_region_not_covered_and_nothing_written(app, yb, pay):
    policy(yb, "532900")
    policy(yb, "110000", doc=BEIJING)
    hospital = yb.institution(kind="hospital", region="110105", name="北京协和医院", level="tertiary")
    dali = yb.person(region="532901")
    before = orders_count(app)
    problem(scan(yb, hospital, dali), 403, "REGION_NOT_COVERED")
    # a filing for another region, or one that has ended, does not cover Beijing either
    for filing in (
        {"region": "310000"},
        {
            "region": "110000",
            "valid_from": str(utcnow().date() - timedelta(days=30)),
            "valid_until": str(utcnow().date() - timedelta(days=1)),
        },
    ):
        assert yb.admin("POST", f"/persons/{dali.psn_no}/cross-region-filings", filing).status_code == 201
        problem(scan(yb, hospital, dali), 403, "REGION_NOT_COVERED")
    assert orders_count(app) == before
    got = yb.as_user(dali, "GET", "/accounts/me/benefits", query_string={"year": YEAR}).get_json()
    assert got["settlements"] == 0
