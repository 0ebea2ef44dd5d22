"""Bad input and faults of issue #4, each its own test: the problem code, and nothing written."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from family_accounts import acting as family
from payments.models import Entry, PaymentGrant, PaymentOrder, TraceCodeSettlement
from tests.support import problem
from voucher.ec_tokens import issue_ec_token
from yibao.db import db, utcnow
from yibao.errors import AppError
from yibao.registry import services as registry

from .support import item, trace_code


def counts(app) -> tuple[int, int, int]:
    """(orders, ledger entries, active trace-code settlements)."""
    with app.app_context(), db.uow(readonly=True) as uow:
        s = uow.session
        return (
            s.scalar(select(func.count(PaymentOrder.id))),
            s.scalar(select(func.count(Entry.id))),
            s.scalar(
                select(func.count(TraceCodeSettlement.id)).where(TraceCodeSettlement.released_at.is_(None))
            ),
        )


def ec_token(app, psn_no, org_id, business_type="02121"):
    with app.app_context(), db.uow() as uow:
        person = registry.person_by_psn_no(uow, psn_no)
        inst = registry.institution_by_org_id(uow, org_id)
        token, _ = issue_ec_token(
            uow, person_id=person.id, institution_id=inst.id, business_type=business_type
        )
        uow.commit()
    return token


@pytest.fixture
def payer(yb):
    return yb.person(balance=10_000)


# ----------------------------------------------------------------- items and amounts


@pytest.mark.parametrize("quantity", [0, -1])
def test_quantity_must_be_positive(app, pay, shop, payer, quantity):
    before = counts(app)
    body = pay.order_body(pay.pay_auth(payer), items=[item(quantity=quantity)])
    err = problem(pay.create(shop, body), 422, "VALIDATION_FAILED")
    assert "items" in err["errors"]
    assert counts(app) == before


def test_negative_price_refused(app, pay, shop, payer):
    before = counts(app)
    body = pay.order_body(pay.pay_auth(payer), items=[item(price=-1)])
    problem(pay.create(shop, body), 422, "VALIDATION_FAILED")
    assert counts(app) == before


@pytest.mark.parametrize(
    "items,delivery",
    [
        ([item(price=2**53)], 0),
        ([item(price=2**52, quantity=2)], 0),
        ([item(price=2**52), item(price=2**52)], 0),
        ([item(price=2**53 - 1)], 1),
        ([item(price=10**30)], 0),
    ],
)
def test_totals_beyond_2_pow_53_refused(app, pay, shop, payer, items, delivery):
    before = counts(app)
    auth = pay.pay_auth(payer)
    problem(
        pay.create(shop, pay.order_body(auth, items=items, delivery_fee_fen=delivery)),
        422,
        "AMOUNT_TOO_LARGE",
    )
    assert counts(app) == before
    # nothing consumed: the same authorization still works
    assert pay.create(shop, pay.order_body(auth)).status_code == 201


def test_total_of_exactly_2_pow_53_minus_1_is_accepted(pay, shop, payer):
    r = pay.create(
        shop, pay.order_body(pay.pay_auth(payer), items=[item(price=2**53 - 2)], delivery_fee_fen=1)
    )
    assert r.status_code == 201, r.get_json()
    o = r.get_json()
    assert o["total_fen"] == 2**53 - 1
    assert (o["account_pay_fen"], o["cash_pay_fen"]) == (10_000, 2**53 - 1 - 10_000)


def test_prescription_drug_not_eligible_online(app, pay, shop, payer):
    before = counts(app)
    body = pay.order_body(pay.pay_auth(payer), items=[item(), item(otc=False)])
    problem(pay.create(shop, body), 422, "ITEM_NOT_ELIGIBLE")
    assert counts(app) == before


def test_online_authorization_needs_an_online_otc_institution(app, pay, counter, payer):
    before = counts(app)
    problem(pay.create(counter, pay.order_body(pay.pay_auth(payer))), 403, "INSTITUTION_NOT_DESIGNATED")
    assert counts(app) == before


def test_exactly_one_grant(pay, shop, payer):
    both = pay.order_body(pay.pay_auth(payer), ec_token="ec_x")
    problem(pay.create(shop, both), 422, "VALIDATION_FAILED")
    problem(pay.create(shop, pay.order_body()), 422, "VALIDATION_FAILED")


@pytest.mark.parametrize("field,value", [("otc", "true"), ("quantity", "1"), ("unit_price_fen", 1.5)])
def test_loose_types_refused(pay, shop, payer, field, value):
    it = item()
    it[field] = value
    problem(pay.create(shop, pay.order_body(pay.pay_auth(payer), items=[it])), 422, "VALIDATION_FAILED")


def test_unknown_field_refused(pay, shop, payer):
    problem(pay.create(shop, pay.order_body(pay.pay_auth(payer), discount_fen=5)), 422, "VALIDATION_FAILED")


def test_merchant_order_no_unique_per_institution(app, pay, shop, payer):
    body = pay.order_body(pay.pay_auth(payer))
    assert pay.create(shop, body).status_code == 201
    again = {**body, "pay_auth_no": pay.pay_auth(payer)}
    problem(pay.create(shop, again), 409, "MERCHANT_ORDER_EXISTS")
    assert counts(app)[0] == 1


# ----------------------------------------------------------------- pay authorizations and ec tokens


def test_unknown_pay_auth_no(app, pay, shop, payer):
    problem(pay.create(shop, pay.order_body("pa_unknown")), 422, "PAY_AUTH_INVALID")
    assert counts(app)[0] == 0


def test_expired_pay_auth_no(app, pay, shop, payer):
    auth = pay.pay_auth(payer)
    with app.app_context(), db.uow() as uow:
        uow.session.execute(
            update(PaymentGrant)
            .where(PaymentGrant.grant_key == auth)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        uow.commit()
    problem(pay.create(shop, pay.order_body(auth)), 422, "PAY_AUTH_INVALID")
    assert counts(app)[0] == 0


def test_pay_auth_expires_in_five_minutes(yb, payer):
    r = yb.as_user(payer, "POST", "/pay-authorizations", {"purpose": "counter"})
    assert r.status_code == 201
    assert 295 <= r.get_json()["expires_in"] <= 300


def test_reused_pay_auth_no(app, pay, shop, payer):
    auth = pay.pay_auth(payer)
    assert pay.create(shop, pay.order_body(auth)).status_code == 201
    problem(pay.create(shop, pay.order_body(auth)), 409, "PAY_AUTH_ALREADY_USED")
    assert counts(app)[0] == 1


def test_bad_pay_authorization_requests(yb, payer):
    problem(yb.as_user(payer, "POST", "/pay-authorizations", {"purpose": "other"}), 422, "VALIDATION_FAILED")
    problem(
        yb.client.post("/api/v1/pay-authorizations", json={"purpose": "counter"}),
        401,
        "AUTHENTICATION_REQUIRED",
    )


def test_on_behalf_of_needs_a_family_binding(yb, payer):
    other = yb.person(balance=1)
    r = yb.as_user(
        payer, "POST", "/pay-authorizations", {"purpose": "online_otc", "on_behalf_of": other.psn_no}
    )
    problem(r, 403, "NOT_PERMITTED")


def test_suspended_payer_refused(app, yb, pay, shop, payer):
    auth = pay.pay_auth(payer)
    with app.app_context(), db.uow() as uow:
        registry.set_person_status(uow, payer.psn_no, "suspended")
        uow.commit()
    problem(pay.create(shop, pay.order_body(auth)), 403, "PERSON_SUSPENDED")
    assert counts(app)[0] == 0


def test_payer_suspended_after_the_order_is_not_charged(app, yb, pay, shop, payer):
    before_balance = pay.balance(payer)
    order = pay.order(shop, payer, items=[item(price=700, quantity=1, codes=[trace_code()])])
    before = counts(app)
    with app.app_context(), db.uow() as uow:
        registry.set_person_status(uow, payer.psn_no, "suspended")
        uow.commit()
    problem(pay.pay(shop, order["pay_order_id"]), 403, "PERSON_SUSPENDED")
    assert counts(app) == before  # no entry, no settled code
    got = yb.as_institution(shop, "GET", f"/payment-orders/{order['pay_order_id']}").get_json()
    assert got["status"] == "created"
    # reactivated: the same order pays (a new Idempotency-Key: the refusal is stored under the old one)
    with app.app_context(), db.uow() as uow:
        registry.set_person_status(uow, payer.psn_no, "active")
        uow.commit()
    r = pay.pay(shop, order["pay_order_id"])
    assert r.status_code == 200, r.get_json()
    assert pay.balance(payer) == before_balance - 700
    assert pay.reconcile()["ok"] is True


def test_an_order_is_payable_for_30_minutes_only(app, yb, pay, shop, payer, monkeypatch):
    stale = pay.order(shop, payer, items=[item(price=300, codes=[trace_code()])])
    fresh = pay.order(shop, payer, items=[item(price=200)])
    before = counts(app)
    placed = utcnow()
    monkeypatch.setattr("payments.settlement.utcnow", lambda: placed + timedelta(minutes=31))
    problem(pay.pay(shop, stale["pay_order_id"]), 409, "ORDER_EXPIRED")
    assert counts(app) == before  # nothing debited, no code settled
    got = yb.as_institution(shop, "GET", f"/payment-orders/{stale['pay_order_id']}").get_json()
    assert got["status"] == "created"
    cancel = yb.as_institution(shop, "POST", f"/payment-orders/{stale['pay_order_id']}/cancel")
    assert cancel.status_code == 200 and cancel.get_json()["status"] == "cancelled"
    monkeypatch.setattr("payments.settlement.utcnow", lambda: placed + timedelta(minutes=29))
    assert pay.pay(shop, fresh["pay_order_id"]).status_code == 200


def test_ec_token_of_another_institution(app, yb, pay, counter, payer):
    other = yb.institution(kind="pharmacy", name="别家药房")
    token = ec_token(app, payer.psn_no, other.org_id)
    problem(pay.create(counter, pay.order_body(ec_token=token)), 422, "EC_TOKEN_INVALID")
    assert counts(app)[0] == 0


def test_ec_token_of_a_non_payment_business_type(app, pay, counter, payer):
    token = ec_token(app, payer.psn_no, counter.org_id, business_type="03131")
    problem(pay.create(counter, pay.order_body(ec_token=token)), 422, "BUSINESS_TYPE_NOT_PAYABLE")
    assert counts(app)[0] == 0


def test_ec_token_is_single_use_for_orders(app, pay, counter, payer):
    token = ec_token(app, payer.psn_no, counter.org_id)
    assert pay.create(counter, pay.order_body(ec_token=token)).status_code == 201
    problem(pay.create(counter, pay.order_body(ec_token=token)), 409, "PAY_AUTH_ALREADY_USED")
    assert counts(app)[0] == 1


def test_hospital_settlement_ec_token_pays(app, yb, pay, payer):
    hospital = yb.institution(kind="hospital", name="医院")
    token = ec_token(app, payer.psn_no, hospital.org_id, business_type="01301")
    o = pay.create(hospital, pay.order_body(ec_token=token, items=[item(price=20_000, otc=False)])).get_json()
    r = pay.pay(hospital, o["pay_order_id"])
    assert r.status_code == 200
    assert (r.get_json()["account_pay_fen"], r.get_json()["cash_pay_fen"]) == (10_000, 10_000)


# ----------------------------------------------------------------- traceability codes


@pytest.mark.parametrize(
    "code",
    [
        "1234567890123456789",  # 19 digits
        "123456789012345678901",  # 21 digits
        "1234567890123456789X",
        "",
        "(01)0690123456789",  # GTIN too short
        "(02)06901234567892(21)A1",  # not AI 01
        "0106901234567892",  # GTIN only: no serial, not one box
        "12345678901234567890 ",
    ],
)
def test_malformed_trace_code(app, pay, shop, payer, code):
    before = counts(app)
    problem(
        pay.create(shop, pay.order_body(pay.pay_auth(payer), items=[item(codes=[code])])),
        422,
        "TRACE_CODE_MALFORMED",
    )
    assert counts(app) == before


def test_gs1_trace_codes_accepted(pay, shop, payer):
    codes = ["(01)06901234567892(17)271231(21)SN0001", "0106901234567892\x1d21SN0002"]
    r = pay.create(shop, pay.order_body(pay.pay_auth(payer), items=[item(quantity=2, codes=codes)]))
    assert r.status_code == 201, r.get_json()


def test_same_code_twice_in_one_order(app, pay, shop, payer):
    code = trace_code()
    problem(
        pay.create(shop, pay.order_body(pay.pay_auth(payer), items=[item(quantity=2, codes=[code, code])])),
        422,
        "TRACE_CODE_DUPLICATE",
    )
    problem(
        pay.create(shop, pay.order_body(pay.pay_auth(payer), items=[item(codes=[code]), item(codes=[code])])),
        422,
        "TRACE_CODE_DUPLICATE",
    )
    assert counts(app)[0] == 0


def test_same_gs1_box_in_two_notations(pay, shop, payer):
    codes = ["(01)06901234567892(21)SN0001", "0106901234567892\x1d21SN0001"]
    problem(
        pay.create(shop, pay.order_body(pay.pay_auth(payer), items=[item(quantity=2, codes=codes)])),
        422,
        "TRACE_CODE_DUPLICATE",
    )


def test_one_code_per_unit(pay, shop, payer):
    problem(
        pay.create(shop, pay.order_body(pay.pay_auth(payer), items=[item(quantity=2, codes=[trace_code()])])),
        422,
        "TRACE_CODE_COUNT_MISMATCH",
    )


def test_settled_code_refused_until_refund_releases_it(app, yb, pay, shop, payer):
    code = trace_code()
    first = pay.order(shop, payer, items=[item(codes=[code])])
    # a second order with the same box, created before the first is paid
    other = yb.person(balance=5000)
    second = pay.order(shop, other, items=[item(codes=[code])])
    assert pay.pay(shop, first["pay_order_id"]).status_code == 200
    before = counts(app)
    problem(pay.pay(shop, second["pay_order_id"]), 409, "TRACE_CODE_ALREADY_SETTLED")
    assert counts(app) == before
    assert pay.balance(other) == 5000
    got = yb.as_institution(shop, "GET", f"/payment-orders/{second['pay_order_id']}").get_json()
    assert got["status"] == "created"
    # placing a new order with a settled code is refused up front
    problem(
        pay.create(shop, pay.order_body(pay.pay_auth(other), items=[item(codes=[code])])),
        409,
        "TRACE_CODE_ALREADY_SETTLED",
    )
    # the refund releases it; then the waiting order settles
    assert pay.refund(shop, first["pay_order_id"]).status_code == 201
    assert pay.pay(shop, second["pay_order_id"]).status_code == 200
    pay.reconcile()


def test_refund_releases_only_named_codes(app, pay, shop, payer):
    a, b = trace_code(), trace_code()
    o = pay.order(shop, payer, items=[item(price=100, quantity=2, codes=[a, b])])
    assert pay.pay(shop, o["pay_order_id"]).status_code == 200
    problem(
        pay.refund(
            shop, o["pay_order_id"], {"amount_fen": 100, "reason": "x", "trace_codes": [trace_code()]}
        ),
        422,
        "TRACE_CODE_NOT_IN_ORDER",
    )
    r = pay.refund(shop, o["pay_order_id"], {"amount_fen": 100, "reason": "x", "trace_codes": [a]})
    assert r.get_json()["released_trace_codes"] == [a]
    assert counts(app)[2] == 1
    problem(
        pay.refund(shop, o["pay_order_id"], {"amount_fen": 50, "reason": "x", "trace_codes": [a]}),
        422,
        "TRACE_CODE_NOT_IN_ORDER",
    )


# ----------------------------------------------------------------- state machine and ownership


def test_paying_an_order_twice(app, pay, shop, payer):
    o = pay.order(shop, payer)
    assert pay.pay(shop, o["pay_order_id"]).status_code == 200
    before = counts(app)
    problem(pay.pay(shop, o["pay_order_id"]), 409, "ORDER_STATE_CONFLICT")
    assert counts(app) == before
    assert pay.balance(payer) == 9000


def test_cancel_then_pay_or_refund_conflicts(app, yb, pay, shop, payer):
    o = pay.order(shop, payer)
    r = yb.as_institution(shop, "POST", f"/payment-orders/{o['pay_order_id']}/cancel")
    assert r.status_code == 200
    assert r.get_json()["status"] == "cancelled"
    problem(pay.pay(shop, o["pay_order_id"]), 409, "ORDER_STATE_CONFLICT")
    problem(pay.refund(shop, o["pay_order_id"]), 409, "ORDER_STATE_CONFLICT")
    problem(
        yb.as_institution(shop, "POST", f"/payment-orders/{o['pay_order_id']}/cancel"),
        409,
        "ORDER_STATE_CONFLICT",
    )
    assert pay.balance(payer) == 10_000


def test_cancel_after_pay_and_refund_before_pay_conflict(pay, yb, shop, payer):
    o = pay.order(shop, payer)
    problem(pay.refund(shop, o["pay_order_id"]), 409, "ORDER_STATE_CONFLICT")
    assert pay.pay(shop, o["pay_order_id"]).status_code == 200
    problem(
        yb.as_institution(shop, "POST", f"/payment-orders/{o['pay_order_id']}/cancel"),
        409,
        "ORDER_STATE_CONFLICT",
    )


def test_another_institution_cannot_touch_the_order(app, yb, pay, shop, payer):
    o = pay.order(shop, payer)
    other = yb.institution(kind="online_pharmacy", name="别家线上药房")
    problem(pay.pay(other, o["pay_order_id"]), 404, "ORDER_NOT_FOUND")
    problem(
        yb.as_institution(other, "POST", f"/payment-orders/{o['pay_order_id']}/cancel"),
        404,
        "ORDER_NOT_FOUND",
    )
    problem(yb.as_institution(other, "GET", f"/payment-orders/{o['pay_order_id']}"), 404, "ORDER_NOT_FOUND")
    assert pay.pay(shop, o["pay_order_id"]).status_code == 200
    before = counts(app)
    problem(pay.refund(other, o["pay_order_id"]), 404, "ORDER_NOT_FOUND")
    assert counts(app) == before


def test_user_cannot_read_anothers_order_or_account(yb, pay, shop, payer):
    o = pay.order(shop, payer)
    other = yb.person(balance=1)
    problem(yb.as_user(other, "GET", f"/payment-orders/{o['pay_order_id']}"), 404, "ORDER_NOT_FOUND")
    problem(yb.as_user(other, "GET", f"/accounts/me?on_behalf_of={payer.psn_no}"), 403, "NOT_PERMITTED")
    problem(
        yb.as_user(other, "GET", f"/accounts/me/entries?on_behalf_of={payer.psn_no}"), 403, "NOT_PERMITTED"
    )
    assert yb.as_user(payer, "GET", f"/payment-orders/{o['pay_order_id']}").status_code == 200
    problem(yb.client.get(f"/api/v1/payment-orders/{o['pay_order_id']}"), 401, "AUTHENTICATION_REQUIRED")


def test_unknown_order(pay, shop):
    problem(pay.pay(shop, "po_nope"), 404, "ORDER_NOT_FOUND")


# ----------------------------------------------------------------- balances and splits


def test_short_balance_pays_the_rest_in_cash(pay, shop, yb):
    p = yb.person(balance=700)
    o = pay.order(shop, p, items=[item(price=1000)], delivery_fee_fen=500)
    assert (o["account_pay_fen"], o["cash_pay_fen"]) == (700, 800)
    r = pay.pay(shop, o["pay_order_id"]).get_json()
    assert (r["account_pay_fen"], r["cash_pay_fen"]) == (700, 800)
    assert pay.balance(p) == 0


def test_account_only_refused_when_short(app, pay, shop, yb):
    p = yb.person(balance=700)
    body = pay.order_body(pay.pay_auth(p), items=[item(price=1000)], delivery_fee_fen=500, account_only=True)
    problem(pay.create(shop, body), 409, "INSUFFICIENT_BALANCE")
    assert counts(app)[0] == 0


def test_account_only_checked_again_at_pay(app, pay, shop, yb):
    p = yb.person(balance=1000)
    a = pay.order(shop, p, items=[item(price=1000)], account_only=True)
    b = pay.order(shop, p, items=[item(price=1000)], delivery_fee_fen=300, account_only=True)
    assert pay.pay(shop, a["pay_order_id"]).status_code == 200
    before = counts(app)
    problem(pay.pay(shop, b["pay_order_id"]), 409, "INSUFFICIENT_BALANCE")
    assert counts(app) == before
    assert pay.balance(p) == 0


def test_resident_pays_cash(pay, shop, yb):
    p = yb.person(insurance_type="resident")
    o = pay.order(shop, p, items=[item(price=1000)])
    r = pay.pay(shop, o["pay_order_id"]).get_json()
    assert (r["account_pay_fen"], r["cash_pay_fen"], r["status"]) == (0, 1000, "paid")
    pay.reconcile()


def test_refund_bounds(app, pay, shop, payer):
    o = pay.order(shop, payer, items=[item(price=1000)], delivery_fee_fen=200)
    assert pay.pay(shop, o["pay_order_id"]).status_code == 200
    problem(
        pay.refund(shop, o["pay_order_id"], {"amount_fen": 1201, "reason": "x"}), 409, "REFUND_EXCEEDS_PAID"
    )
    problem(pay.refund(shop, o["pay_order_id"], {"amount_fen": 0, "reason": "x"}), 422, "VALIDATION_FAILED")
    problem(pay.refund(shop, o["pay_order_id"], {"amount_fen": 5}), 422, "VALIDATION_FAILED")
    assert pay.refund(shop, o["pay_order_id"], {"amount_fen": 1100, "reason": "x"}).status_code == 201
    problem(
        pay.refund(shop, o["pay_order_id"], {"amount_fen": 101, "reason": "x"}), 409, "REFUND_EXCEEDS_PAID"
    )
    last = pay.refund(shop, o["pay_order_id"], {"amount_fen": 100, "reason": "x"}).get_json()
    assert (last["account_refund_fen"], last["cash_refund_fen"]) == (0, 100)
    problem(
        pay.refund(shop, o["pay_order_id"], {"amount_fen": 1, "reason": "x"}), 409, "ORDER_STATE_CONFLICT"
    )
    assert pay.balance(payer) == 10_000
    pay.reconcile()


# ----------------------------------------------------------------- family: acting for a member, mutual aid


def test_pay_on_behalf_of_a_member_records_the_actor(app, yb, pay, shop, monkeypatch):
    parent, child = yb.person(balance=100), yb.person(balance=3000)
    with app.app_context(), db.uow(readonly=True) as uow:
        child_id = registry.person_by_psn_no(uow, child.psn_no).id

    def allow(uow, *, actor_person_id, member_psn_no, action):
        # "pay" when ordering and paying, "read_account" when the actor reads the order
        assert member_psn_no == child.psn_no and action in ("pay", "read_account")
        return child_id

    monkeypatch.setattr(family, "acting_permission", allow)
    auth = pay.pay_auth(parent, on_behalf_of=child.psn_no)
    o = pay.create(shop, pay.order_body(auth, items=[item(price=1000)])).get_json()
    assert pay.pay(shop, o["pay_order_id"]).status_code == 200
    assert (pay.balance(child), pay.balance(parent)) == (2000, 100)
    with app.app_context(), db.uow(readonly=True) as uow:
        row = uow.session.scalar(select(PaymentOrder))
        parent_id = registry.person_by_psn_no(uow, parent.psn_no).id
        assert (row.payer_person_id, row.actor_person_id) == (child_id, parent_id)
    # both the payer and the actor may read it
    assert yb.as_user(parent, "GET", f"/payment-orders/{o['pay_order_id']}").status_code == 200
    assert yb.as_user(child, "GET", f"/payment-orders/{o['pay_order_id']}").status_code == 200


def test_mutual_aid_charged_after_own_account_and_refunded_to_it(app, yb, pay, shop, monkeypatch):
    member, holder = yb.person(balance=300), yb.person(balance=1000)
    with app.app_context(), db.uow(readonly=True) as uow:
        holder_id = registry.person_by_psn_no(uow, holder.psn_no).id
    monkeypatch.setattr(family, "mutual_aid_holders", lambda uow, *, member_person_id, **_: [holder_id])
    o = pay.order(shop, member, items=[item(price=1000)], delivery_fee_fen=100)
    assert (o["account_pay_fen"], o["mutual_aid_pay_fen"], o["cash_pay_fen"]) == (300, 700, 100)
    r = pay.pay(shop, o["pay_order_id"]).get_json()
    assert (r["account_pay_fen"], r["mutual_aid_pay_fen"], r["cash_pay_fen"]) == (300, 700, 100)
    assert (pay.balance(member), pay.balance(holder)) == (0, 300)
    # refund order: mutual aid first, then the member's own account, cash last
    rf = pay.refund(shop, o["pay_order_id"], {"amount_fen": 800, "reason": "x"}).get_json()
    assert (rf["mutual_aid_refund_fen"], rf["account_refund_fen"], rf["cash_refund_fen"]) == (700, 800, 0)
    assert (pay.balance(member), pay.balance(holder)) == (100, 1000)
    rf = pay.refund(shop, o["pay_order_id"]).get_json()
    assert (rf["mutual_aid_refund_fen"], rf["account_refund_fen"], rf["cash_refund_fen"]) == (0, 200, 100)
    assert (pay.balance(member), pay.balance(holder)) == (300, 1000)
    pay.reconcile()


def test_acting_permission_is_checked_again_at_pay(app, yb, pay, shop, monkeypatch):
    parent, child = yb.person(balance=100), yb.person(balance=3000)
    with app.app_context(), db.uow(readonly=True) as uow:
        child_id = registry.person_by_psn_no(uow, child.psn_no).id
    monkeypatch.setattr(family, "acting_permission", lambda uow, **kw: child_id)
    o = pay.create(shop, pay.order_body(pay.pay_auth(parent, on_behalf_of=child.psn_no))).get_json()
    got = yb.as_user(child, "GET", f"/payment-orders/{o['pay_order_id']}").get_json()
    assert got["acted_by"] == parent.psn_no

    def ended(uow, **kw):
        raise AppError("NOT_PERMITTED")

    monkeypatch.setattr(family, "acting_permission", ended)  # the binding ended before pay
    before = counts(app)
    problem(pay.pay(shop, o["pay_order_id"]), 403, "NOT_PERMITTED")
    assert counts(app) == before
    assert pay.balance(child) == 3000


def test_expire_unpaid_orders(app, yb, pay, shop, payer, runner, monkeypatch):
    from payments import orders
    from payments.models import WebhookEvent

    yb.admin("PUT", f"/institutions/{shop.org_id}/webhook", {"url": "https://shop.example/hooks"})
    stale = pay.order(shop, payer, items=[item(price=300)])
    paid = pay.order(shop, payer, items=[item(price=200)])
    assert pay.pay(shop, paid["pay_order_id"]).status_code == 200
    placed = utcnow()
    with app.app_context(), db.uow() as uow:  # still inside the pay window: nothing to do
        assert orders.expire_unpaid_orders(uow, now=placed + timedelta(minutes=29)) == []
        uow.commit()
    monkeypatch.setattr("payments.orders.utcnow", lambda: placed + timedelta(minutes=31))
    out = runner.invoke(args=["payments", "expire-orders"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {"cancelled": 1, "pay_order_ids": [stale["pay_order_id"]]}
    get = yb.as_institution
    assert get(shop, "GET", f"/payment-orders/{stale['pay_order_id']}").get_json()["status"] == "cancelled"
    assert get(shop, "GET", f"/payment-orders/{paid['pay_order_id']}").get_json()["status"] == "paid"
    with app.app_context(), db.uow(readonly=True) as uow:
        types = uow.session.scalars(select(WebhookEvent.type).order_by(WebhookEvent.id)).all()
    assert types == ["payment.paid", "payment.cancelled"]
    again = runner.invoke(args=["payments", "expire-orders"])
    assert json.loads(again.output)["cancelled"] == 0
    pay.reconcile()


def test_one_gs1_box_settles_once_whatever_its_notation(pay, shop, payer):
    first = pay.order(shop, payer, items=[item(codes=["(01)06901234567892(21)SERIAL0001"])])
    assert pay.pay(shop, first["pay_order_id"]).status_code == 200
    for same_box in (
        "(01)06901234567892(17)271231(21)SERIAL0001",
        "(01)06901234567892(10)LOT7(21)SERIAL0001",
        "010690123456789210LOT7\x1d21SERIAL0001",
    ):
        r = pay.create(shop, pay.order_body(pay.pay_auth(payer), items=[item(codes=[same_box])]))
        problem(r, 409, "TRACE_CODE_ALREADY_SETTLED")


def test_refund_must_pay_back_the_boxes_it_releases(app, yb, pay, shop, payer):
    a, b = trace_code(), trace_code()
    o = pay.order(shop, payer, items=[item(price=5000, quantity=2, codes=[a, b])])
    assert pay.pay(shop, o["pay_order_id"]).status_code == 200
    before = counts(app)
    body = {"amount_fen": 1, "reason": "x", "trace_codes": [a, b]}
    problem(pay.refund(shop, o["pay_order_id"], body), 422, "REFUND_TOO_SMALL_FOR_CODES")
    problem(
        pay.refund(shop, o["pay_order_id"], {"amount_fen": 4999, "reason": "x", "trace_codes": [a]}),
        422,
        "REFUND_TOO_SMALL_FOR_CODES",
    )
    assert counts(app) == before  # nothing refunded, nothing released
    # a box's price releases its code; later releases count what was released before
    r = pay.refund(shop, o["pay_order_id"], {"amount_fen": 5000, "reason": "x", "trace_codes": [a]})
    assert r.status_code == 201 and r.get_json()["released_trace_codes"] == [a]
    problem(
        pay.refund(shop, o["pay_order_id"], {"amount_fen": 10, "reason": "x", "trace_codes": [b]}),
        422,
        "REFUND_TOO_SMALL_FOR_CODES",
    )
    # a refund that releases nothing may be any amount; the final one releases what is left
    assert pay.refund(shop, o["pay_order_id"], {"amount_fen": 10, "reason": "x"}).status_code == 201
    final = pay.refund(shop, o["pay_order_id"]).get_json()
    assert final["released_trace_codes"] == [b]
    pay.reconcile()


def test_refund_follows_the_charge_order_after_a_holder_withdrew(app, yb, pay, shop, monkeypatch):
    member, h1, h2 = yb.person(balance=0), yb.person(balance=300), yb.person(balance=1000)
    with app.app_context(), db.uow(readonly=True) as uow:
        ids = [registry.person_by_psn_no(uow, h.psn_no).id for h in (h1, h2)]
    monkeypatch.setattr(family, "mutual_aid_holders", lambda uow, *, member_person_id, **_: ids)
    o = pay.order(shop, member, items=[item(price=1000)])
    assert pay.pay(shop, o["pay_order_id"]).status_code == 200
    assert (pay.balance(h1), pay.balance(h2)) == (0, 300)
    # h1 withdraws: the order still knows h1 was charged first and h2 last
    monkeypatch.setattr(family, "mutual_aid_holders", lambda uow, *, member_person_id, **_: [ids[1]])
    rf = pay.refund(shop, o["pay_order_id"], {"amount_fen": 300, "reason": "x"}).get_json()
    assert rf["mutual_aid_refund_fen"] == 300
    assert (pay.balance(h1), pay.balance(h2)) == (0, 600)  # the last-charged holder first
    pay.refund(shop, o["pay_order_id"])
    assert (pay.balance(h1), pay.balance(h2)) == (300, 1000)
    pay.reconcile()
