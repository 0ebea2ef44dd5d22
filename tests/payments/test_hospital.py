"""Hospital settlement through the v1 order lifecycle (issue 15): create → pay → refund, running totals."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from benefits.models import BenefitTotals
from payments.models import Account
from tests.benefits.support import POLICY_DOC, policy_doc
from tests.support import problem
from voucher.ec_tokens import issue_ec_token
from yibao.china_time import china_date
from yibao.db import db, utcnow
from yibao.registry import services as registry

YEAR = china_date(utcnow()).year


def policy(yb, region="532900", itype="employee", doc=POLICY_DOC):
    r = yb.admin("PUT", f"/benefit-policies/{region}/{itype}/{YEAR}", doc)
    assert r.status_code == 200, r.get_json()


def token(app, inst, p, business_type="01301"):
    with app.app_context(), db.uow() as uow:
        person = registry.person_by_psn_no(uow, p.psn_no)
        from yibao.registry.models import Institution

        iid = uow.session.scalar(select(Institution.id).where(Institution.org_id == inst.org_id))
        tok, _ = issue_ec_token(uow, person_id=person.id, institution_id=iid, business_type=business_type)
        uow.commit()
    return tok


def body(tok, med_type="outpatient", items=None, **extra):
    items = items or [
        {"item_code": "A001", "item_name": "诊查费", "category": "A", "quantity": 1, "unit_price_fen": 20000}
    ]
    return {
        "ec_token": tok,
        "merchant_order_no": "h-" + tok[-10:],
        "med_type": med_type,
        "items": items,
        **extra,
    }


@pytest.fixture
def hospital(yb):
    return yb.institution(kind="hospital", name="大理州人民医院", level="tertiary")


def settle(app, yb, pay, inst, p, **kw):
    r = pay.create(inst, body(token(app, inst, p), **kw))
    assert r.status_code == 201, r.get_json()
    o = r.get_json()
    r = pay.pay(inst, o["pay_order_id"])
    assert r.status_code == 200, r.get_json()
    return o, r.get_json()


def test_outpatient_first_and_second_visit(app, yb, pay, hospital):
    policy(yb)
    p = yb.person(balance=10000)
    o, paid = settle(app, yb, pay, hospital, p)
    # tertiary first visit: deductible 5000, hifp = 15000 x 50% = 7500; 12500: 10000 account + 2500 cash
    assert o["med_type"] == "outpatient" and o["policy_version"] == 1
    for got in (o, paid):
        assert (got["deductible_fen"], got["hifp_pay_fen"], got["fund_pay_fen"]) == (5000, 7500, 7500)
        assert (got["account_pay_fen"], got["cash_pay_fen"], got["total_fen"]) == (10000, 2500, 20000)
    assert paid["status"] == "paid"
    _, second = settle(app, yb, pay, hospital, p)
    assert (second["deductible_fen"], second["hifp_pay_fen"], second["account_pay_fen"]) == (0, 10000, 0)
    assert second["cash_pay_fen"] == 10000
    assert pay.balance(p) == 0
    r = yb.as_user(p, "GET", "/payment-orders/" + paid["pay_order_id"])
    assert r.status_code == 200 and r.get_json()["hifp_pay_fen"] == 7500
    pay.reconcile()
    with app.app_context(), db.uow(readonly=True) as uow:
        t = uow.session.scalar(select(BenefitTotals))
        assert (t.hifp_outpatient_fen, t.deductible_outpatient_fen, t.settlements) == (17500, 5000, 2)
        fund = uow.session.scalar(select(Account).where(Account.system_name == "hifp:532900"))
        assert fund is not None and fund.kind == "funding"


def test_refund_whole_gives_everything_back(app, yb, pay, hospital):
    policy(yb)
    p = yb.person(balance=10000)
    _, paid = settle(app, yb, pay, hospital, p)
    oid = paid["pay_order_id"]
    err = problem(
        pay.refund(hospital, oid, {"amount_fen": 100, "reason": "部分"}), 422, "REFUND_MUST_BE_WHOLE"
    )
    assert err["refundable_fen"] == 20000
    r = pay.refund(hospital, oid, {"amount_fen": 20000, "reason": "退费"})
    assert r.status_code == 201, r.get_json()
    rf = r.get_json()
    assert (rf["amount_fen"], rf["hifp_refund_fen"], rf["hifmi_refund_fen"], rf["maf_refund_fen"]) == (
        20000,
        7500,
        0,
        0,
    )
    assert (rf["account_refund_fen"], rf["cash_refund_fen"], rf["mutual_aid_refund_fen"]) == (10000, 2500, 0)
    assert pay.balance(p) == 10000
    problem(pay.refund(hospital, oid), 409, "ORDER_STATE_CONFLICT")
    with app.app_context(), db.uow(readonly=True) as uow:
        t = uow.session.scalar(select(BenefitTotals))
        assert (t.hifp_outpatient_fen, t.deductible_outpatient_fen, t.settlements) == (0, 0, 0)
    # the refunded visit no longer counts for the day: the next one pays the deductible again
    _, again = settle(app, yb, pay, hospital, p)
    assert again["deductible_fen"] == 5000 and again["hifp_pay_fen"] == 7500
    pay.reconcile()


def test_cap_and_inpatient_threshold(app, yb, pay, hospital):
    policy(yb, doc=policy_doc(**{"inpatient.annual_cap_fen": 800000}))
    p = yb.person()
    item = [
        {"item_code": "B1", "item_name": "床位", "category": "A", "quantity": 1, "unit_price_fen": 1000000}
    ]
    _, first = settle(app, yb, pay, hospital, p, med_type="inpatient", items=item)
    assert (first["deductible_fen"], first["hifp_pay_fen"], first["hifmi_pay_fen"]) == (100000, 720000, 0)
    _, second = settle(app, yb, pay, hospital, p, med_type="inpatient", items=item)
    # cap 800000 leaves 80000; share = 1000000 - 80000 = 920000 on 280000 before: above 2000000 by 0
    assert second["hifp_pay_fen"] == 80000
    _, third = settle(app, yb, pay, hospital, p, med_type="inpatient", items=item)
    # shares before 280000 + 920000 = 1200000; + 1000000 = 2200000: hifmi = 200000 x 60% = 120000
    assert (third["hifp_pay_fen"], third["hifmi_pay_fen"]) == (0, 120000)
    pay.reconcile()


def test_dibao_resident(app, yb, pay):
    policy(yb, itype="resident")
    inst = yb.institution(kind="hospital", name="县医院")  # secondary by default
    p = yb.person(insurance_type="resident")
    assert yb.admin("PATCH", f"/persons/{p.psn_no}", {"assistance_category": "dibao"}).status_code == 200
    _, paid = settle(app, yb, pay, inst, p)
    assert (paid["hifp_pay_fen"], paid["maf_pay_fen"], paid["cash_pay_fen"]) == (9000, 7700, 3300)


def test_pharmacy_or_other_business_type_refused(app, yb, pay, hospital):
    policy(yb)
    p = yb.person()
    shop = yb.institution(kind="pharmacy")
    problem(pay.create(shop, body(token(app, shop, p, "02121"))), 422, "SCOPE_NOT_ALLOWED")
    problem(pay.create(hospital, body(token(app, hospital, p, "01201"))), 422, "SCOPE_NOT_ALLOWED")


def test_missing_policy(app, yb, pay, hospital):
    p = yb.person()
    problem(pay.create(hospital, body(token(app, hospital, p))), 422, "BENEFIT_POLICY_MISSING")


@pytest.mark.parametrize(
    "items",
    [
        [{"item_code": "X", "item_name": "x", "category": "D", "quantity": 1, "unit_price_fen": 1}],
        [{"item_code": "X", "item_name": "x", "category": "A", "quantity": 0, "unit_price_fen": 1}],
        [{"item_code": "X", "item_name": "x", "category": "A", "quantity": -1, "unit_price_fen": 1}],
        [{"drug_code": "X", "drug_name": "x", "otc": True, "quantity": 1, "unit_price_fen": 1}],
    ],
)
def test_bad_items(app, yb, pay, hospital, items):
    policy(yb)
    p = yb.person()
    problem(pay.create(hospital, body(token(app, hospital, p), items=items)), 422, "VALIDATION_FAILED")


def test_amount_too_large(app, yb, pay, hospital):
    policy(yb)
    p = yb.person()
    items = [{"item_code": "X", "item_name": "x", "category": "A", "quantity": 3, "unit_price_fen": 2**52}]
    problem(pay.create(hospital, body(token(app, hospital, p), items=items)), 422, "AMOUNT_TOO_LARGE")


def test_pay_twice_and_suspended(app, yb, pay, hospital):
    policy(yb)
    p = yb.person()
    o, _ = settle(app, yb, pay, hospital, p)
    problem(pay.pay(hospital, o["pay_order_id"]), 409, "ORDER_STATE_CONFLICT")
    r = pay.create(hospital, body(token(app, hospital, p)))
    oid = r.get_json()["pay_order_id"]
    yb.admin("PATCH", f"/persons/{p.psn_no}", {"status": "suspended"})
    assert pay.pay(hospital, oid).status_code in (409, 422, 403)


def test_policy_vanished_at_pay(app, yb, pay, hospital):
    policy(yb)
    p = yb.person()
    oid = pay.create(hospital, body(token(app, hospital, p))).get_json()["pay_order_id"]
    from benefits.models import BenefitPolicy

    with app.app_context(), db.uow() as uow:
        uow.session.query(BenefitPolicy).delete()
        uow.commit()
    problem(pay.pay(hospital, oid), 422, "BENEFIT_POLICY_MISSING")


def test_benefits_me(app, yb, pay, hospital):
    policy(yb)
    p = yb.person(balance=10000)
    r = yb.as_user(p, "GET", "/accounts/me/benefits")
    assert r.status_code == 200, r.get_json()
    got = r.get_json()
    assert got["year"] == YEAR and got["hifp_outpatient_fen"] == 0 and got["policy_version"] == 1
    settle(app, yb, pay, hospital, p)
    got = yb.as_user(p, "GET", "/accounts/me/benefits", query_string={"year": YEAR}).get_json()
    assert got["hifp_outpatient_fen"] == 7500 and got["settlements"] == 1
    assert got["caps"]["hifp_outpatient"] == {"cap_fen": 300000, "paid_fen": 7500, "left_fen": 292500}
    other = yb.person()
    problem(
        yb.as_user(p, "GET", "/accounts/me/benefits", query_string={"psn_no": other.psn_no}),
        403,
        "NOT_PERMITTED",
    )
    got = yb.as_user(p, "GET", "/accounts/me/benefits", query_string={"year": YEAR - 1}).get_json()
    assert got["settlements"] == 0 and got["policy_version"] is None
