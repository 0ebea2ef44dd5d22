"""Happy paths: online OTC order, pay, query, refunds; counter payment with an ec_token."""

from __future__ import annotations

from voucher.ec_tokens import issue_ec_token
from yibao.db import db
from yibao.registry import services as registry

from .support import item, trace_code


def test_online_otc_order_pay_refund(yb, pay, shop):
    p = yb.person(balance=5000)
    codes = [trace_code(), trace_code()]
    body = pay.order_body(
        pay.pay_auth(p), items=[item(price=3000, quantity=2, codes=codes)], delivery_fee_fen=800
    )
    r = pay.create(shop, body)
    assert r.status_code == 201, r.get_json()
    o = r.get_json()
    assert o["status"] == "created"
    assert (o["total_fen"], o["account_pay_fen"], o["mutual_aid_pay_fen"], o["cash_pay_fen"]) == (
        6800,
        5000,
        0,
        1800,
    )
    r = pay.pay(shop, o["pay_order_id"])
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "paid"
    assert pay.balance(p) == 0
    got = yb.as_user(p, "GET", f"/payment-orders/{o['pay_order_id']}")
    assert got.status_code == 200
    assert got.get_json()["items"][0]["trace_codes"] == codes
    # partial refund of one box, account first
    r = pay.refund(
        shop, o["pay_order_id"], {"amount_fen": 3000, "reason": "退一盒", "trace_codes": [codes[0]]}
    )
    assert r.status_code == 201, r.get_json()
    rf = r.get_json()
    assert (rf["account_refund_fen"], rf["cash_refund_fen"], rf["released_trace_codes"]) == (
        3000,
        0,
        [codes[0]],
    )
    assert pay.balance(p) == 3000
    # rest
    r = pay.refund(shop, o["pay_order_id"])
    assert r.status_code == 201, r.get_json()
    rf = r.get_json()
    assert (rf["amount_fen"], rf["account_refund_fen"], rf["cash_refund_fen"]) == (3800, 2000, 1800)
    assert pay.balance(p) == 5000
    got = yb.as_institution(shop, "GET", f"/payment-orders/{o['pay_order_id']}").get_json()
    assert got["status"] == "refunded"
    assert got["refunded_fen"] == 6800
    assert len(got["refunds"]) == 2
    pay.reconcile()


def test_counter_payment_with_ec_token(app, yb, pay, counter):
    p = yb.person(balance=2000)
    with app.app_context(), db.uow() as uow:
        person = registry.person_by_psn_no(uow, p.psn_no)
        inst = registry.institution_by_org_id(uow, counter.org_id)
        token, _ = issue_ec_token(uow, person_id=person.id, institution_id=inst.id, business_type="02121")
        uow.commit()
    body = pay.order_body(items=[item(price=1500, otc=False)], ec_token=token)
    r = pay.create(counter, body)
    assert r.status_code == 201, r.get_json()
    o = r.get_json()
    assert o["purpose"] == "counter"
    r = pay.pay(counter, o["pay_order_id"])
    assert r.status_code == 200, r.get_json()
    assert pay.balance(p) == 500
    entries = yb.as_user(p, "GET", "/accounts/me/entries").get_json()
    assert [e["amount_fen"] for e in entries["items"]] == [-1500, 2000]
    assert entries["items"][0]["pay_order_id"] == o["pay_order_id"]
    pay.reconcile()


def test_counter_payment_end_to_end_through_verification(yb, pay, counter):
    """The user shows the code, the pharmacy scans it (02121), quotes the ec_token in the order, pays."""
    p = yb.person(balance=4000)
    voucher = yb.as_user(p, "POST", "/vouchers", {})
    assert voucher.status_code == 201, voucher.get_json()
    scan = yb.as_institution(
        counter,
        "POST",
        "/verifications",
        {
            "qr_content": voucher.get_json()["token"],
            "business_type": "02121",
            "operator_id": "op1",
            "operator_name": "收银员",
            "device_id": "pos-1",
            "out_biz_no": "scan-1",
        },
    )
    assert scan.status_code == 200, scan.get_json()
    token = scan.get_json()["ec_token"]
    o = pay.create(counter, pay.order_body(ec_token=token, items=[item(price=2500, otc=False)])).get_json()
    assert (o["account_pay_fen"], o["cash_pay_fen"]) == (2500, 0)
    assert pay.pay(counter, o["pay_order_id"]).get_json()["status"] == "paid"
    assert pay.balance(p) == 1500
    pay.reconcile()
