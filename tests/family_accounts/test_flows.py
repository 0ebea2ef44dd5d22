"""End to end through voucher/ and payments/: the two README flows and what ending or withdrawing does."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from tests.support import Institution, problem

from .support import Family
from .support import balance as _balance
from .support import otc_order as _otc_order
from .support import pay_auth as _pay_auth
from .support import pay_order as _pay

SCAN = {"operator_id": "op-7", "operator_name": "王护士", "device_id": "scanner-3"}


def _scan(fam: Family, inst: Institution, qr_content: str, business_type: str) -> Any:
    body = {
        "qr_content": qr_content,
        "business_type": business_type,
        "out_biz_no": secrets.token_hex(6),
        **SCAN,
    }
    return fam.yb.as_institution(inst, "POST", "/verifications", body)


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# --- a parent shows a child's code at a hospital -------------------------------------------------


def test_parent_shows_childs_code_at_a_hospital(fam: Family):
    parent, child = fam.adult(), fam.child(6)
    hospital = fam.yb.institution(kind="hospital", name="州人民医院")
    assert fam.bind_child(parent, child).get_json()["status"] == "active"

    resp = fam.yb.as_user(parent, "POST", "/vouchers", {"on_behalf_of": child.psn_no})
    assert resp.status_code == 201, resp.get_json()
    voucher = resp.get_json()
    claims = _claims(voucher["token"])
    assert "act" in claims and claims["act"]["sub"] != claims["sub"]  # RFC 8693: who presents it
    text = json.dumps(claims, ensure_ascii=False)
    for secret_value in (
        parent.psn_no,
        child.psn_no,
        parent.id_number,
        child.id_number,
        parent.name,
        child.name,
    ):
        assert secret_value not in text  # opaque references only, no PII in the token

    scan = _scan(fam, hospital, voucher["qr_content"], "01101")
    assert scan.status_code == 200, scan.get_json()
    assert scan.get_json()["person"]["psn_no"] == child.psn_no

    # The parent reads the child's usage; the child (from their own account) sees it too.
    for reader, query in ((parent, f"psn_no={child.psn_no}"), (child, "")):
        usage = fam.yb.as_user(reader, "GET", "/vouchers/usage", query_string=query)
        assert usage.status_code == 200, usage.get_json()
        items = usage.get_json()["items"]
        assert len(items) == 1 and items[0]["result"] == "accepted"
        assert items[0]["acted_by"] == parent.psn_no


def test_code_shown_by_a_binder_is_void_once_the_binding_ends(fam: Family):
    parent, child = fam.adult(), fam.child(6)
    hospital = fam.yb.institution(kind="hospital")
    binding_id = fam.bind_child(parent, child).get_json()["binding_id"]
    voucher = fam.yb.as_user(parent, "POST", "/vouchers", {"on_behalf_of": child.psn_no}).get_json()
    assert fam.yb.as_user(child, "DELETE", f"/family/bindings/{binding_id}").status_code == 200
    problem(_scan(fam, hospital, voucher["qr_content"], "01101"), 422, "VOUCHER_REVOKED")
    problem(fam.yb.as_user(parent, "POST", "/vouchers", {"on_behalf_of": child.psn_no}), 403, "NOT_PERMITTED")


# --- a son pays for his mother's OTC order through mutual aid ------------------------------------


def test_son_pays_mothers_otc_order_through_mutual_aid(fam: Family):
    mother = fam.adult(birth="19560310", balance=300)
    son = fam.adult(birth="19850101", balance=10_000)
    shop = fam.yb.institution(kind="online_pharmacy", name="京东大药房")
    fam.active(son, mother, "parent")  # she approves from her own phone
    fam.file_and_approve(son, mother, "parent")

    order = _otc_order(fam, shop, _pay_auth(fam, son, mother), price=1000, delivery=500)
    assert order.status_code == 201, order.get_json()
    body = order.get_json()
    assert (body["total_fen"], body["account_pay_fen"], body["mutual_aid_pay_fen"], body["cash_pay_fen"]) == (
        1500,
        300,
        700,
        500,
    )
    paid = _pay(fam, shop, body["pay_order_id"])
    assert paid.status_code == 200 and paid.get_json()["status"] == "paid", paid.get_json()
    assert _balance(fam, mother) == 0
    assert _balance(fam, son) == 10_000 - 700
    assert _balance(fam, son, on_behalf_of=mother.psn_no) == 0  # he reads her account too

    # She sees the order placed for her; the refund goes back to the accounts it came from.
    assert fam.yb.as_user(mother, "GET", f"/payment-orders/{body['pay_order_id']}").status_code == 200
    refund = fam.yb.as_institution(
        shop,
        "POST",
        f"/payment-orders/{body['pay_order_id']}/refunds",
        {"reason": "退货"},
        headers={"Idempotency-Key": secrets.token_hex(8)},
    )
    assert refund.status_code == 201, refund.get_json()
    assert _balance(fam, mother) == 300 and _balance(fam, son) == 10_000


def test_mother_pays_herself_and_her_son_covers_the_rest(fam: Family):
    """Mutual aid needs no binding: the filing alone lets her own payment draw on his account."""
    mother = fam.adult(insurance_type="resident")  # 居民医保: no personal account of her own
    son = fam.adult(balance=5_000)
    shop = fam.yb.institution(kind="online_pharmacy")
    fam.file_and_approve(son, mother, "parent")
    order = _otc_order(fam, shop, _pay_auth(fam, mother), price=800, delivery=0)
    assert order.status_code == 201, order.get_json()
    assert (order.get_json()["account_pay_fen"], order.get_json()["mutual_aid_pay_fen"]) == (0, 800)


def test_withdrawal_stops_future_use_at_once(fam: Family):
    mother, son = fam.adult(balance=0), fam.adult(balance=5_000)
    shop = fam.yb.institution(kind="online_pharmacy")
    filing_id = fam.file_and_approve(son, mother, "parent")
    quoted = _otc_order(fam, shop, _pay_auth(fam, mother), price=800, delivery=0).get_json()
    assert quoted["mutual_aid_pay_fen"] == 800
    assert fam.yb.as_user(son, "DELETE", f"/family/mutual-aid-filings/{filing_id}").status_code == 200
    # An order already quoted but not yet paid no longer draws on him either.
    paid = _pay(fam, shop, quoted["pay_order_id"])
    assert paid.status_code == 200, paid.get_json()
    assert paid.get_json()["mutual_aid_pay_fen"] == 0
    assert _balance(fam, son) == 5_000
    fresh = _otc_order(fam, shop, _pay_auth(fam, mother), price=800, delivery=0).get_json()
    assert fresh["mutual_aid_pay_fen"] == 0 and fresh["cash_pay_fen"] == 800


def test_pay_authorization_of_an_ended_binding_cannot_be_used(fam: Family):
    """Checked on every request: the binder's unused pay authorization dies with the binding."""
    mother, son = fam.adult(balance=5_000), fam.adult(balance=5_000)
    shop = fam.yb.institution(kind="online_pharmacy")
    binding_id = fam.active(son, mother, "parent")
    pay_auth_no = _pay_auth(fam, son, mother)
    assert fam.yb.as_user(mother, "DELETE", f"/family/bindings/{binding_id}").status_code == 200
    problem(_otc_order(fam, shop, pay_auth_no, price=800, delivery=0), 403, "NOT_PERMITTED")
    assert _balance(fam, mother) == 5_000


def test_binding_ended_between_order_and_pay_stops_the_payment(fam: Family):
    mother, son = fam.adult(balance=5_000), fam.adult(balance=5_000)
    shop = fam.yb.institution(kind="online_pharmacy")
    binding_id = fam.active(son, mother, "parent")
    order = _otc_order(fam, shop, _pay_auth(fam, son, mother), price=800, delivery=0)
    assert order.status_code == 201, order.get_json()
    assert fam.yb.as_user(mother, "DELETE", f"/family/bindings/{binding_id}").status_code == 200
    problem(_pay(fam, shop, order.get_json()["pay_order_id"]), 403, "NOT_PERMITTED")
    assert _balance(fam, mother) == 5_000


def test_member_sees_the_order_her_son_placed_for_her(fam: Family):
    """Issue 5: the member sees everything done on her behalf, including who did it.

    `acted_by` (the binder's psn_no) is the name the voucher usage audit already uses.
    """
    mother, son = fam.adult(balance=5_000), fam.adult(balance=5_000)
    shop = fam.yb.institution(kind="online_pharmacy")
    fam.active(son, mother, "parent")
    order = _otc_order(fam, shop, _pay_auth(fam, son, mother), price=800, delivery=0).get_json()
    assert _pay(fam, shop, order["pay_order_id"]).status_code == 200
    seen = fam.yb.as_user(mother, "GET", f"/payment-orders/{order['pay_order_id']}")
    assert seen.status_code == 200
    assert seen.get_json().get("acted_by") == son.psn_no, seen.get_json()


def test_suspended_binder_cannot_spend_the_members_money(fam: Family):
    """Orders are placed and paid by institutions, where no login checks the binder: the binding does."""
    mother, son = fam.adult(balance=5_000), fam.adult(balance=5_000)
    shop = fam.yb.institution(kind="online_pharmacy")
    fam.active(son, mother, "parent")
    before_order = _pay_auth(fam, son, mother)
    placed = _otc_order(fam, shop, _pay_auth(fam, son, mother), price=800, delivery=0)
    assert placed.status_code == 201, placed.get_json()
    assert fam.yb.admin("PATCH", f"/persons/{son.psn_no}", {"status": "suspended"}).status_code == 200
    # suspended before the order is placed, and between placing and paying
    problem(_otc_order(fam, shop, before_order, price=800, delivery=0), 403, "PERSON_SUSPENDED")
    problem(_pay(fam, shop, placed.get_json()["pay_order_id"]), 403, "PERSON_SUSPENDED")
    assert _balance(fam, mother) == 5_000
    # reactivated, the binding still stands: he may act again
    assert fam.yb.admin("PATCH", f"/persons/{son.psn_no}", {"status": "active"}).status_code == 200
    assert _pay(fam, shop, placed.get_json()["pay_order_id"]).status_code == 200
    assert _balance(fam, mother) == 4_200


def test_ended_binder_no_longer_reads_the_members_orders(fam: Family):
    mother, son = fam.adult(balance=5_000), fam.adult(balance=5_000)
    shop = fam.yb.institution(kind="online_pharmacy")
    binding_id = fam.active(son, mother, "parent")
    order = _otc_order(fam, shop, _pay_auth(fam, son, mother), price=800, delivery=0).get_json()
    assert _pay(fam, shop, order["pay_order_id"]).status_code == 200
    path = f"/payment-orders/{order['pay_order_id']}"
    assert fam.yb.as_user(son, "GET", path).status_code == 200
    assert fam.yb.as_user(mother, "DELETE", f"/family/bindings/{binding_id}").status_code == 200
    problem(fam.yb.as_user(son, "GET", path), 404, "ORDER_NOT_FOUND")
    assert fam.yb.as_user(mother, "GET", path).status_code == 200  # the payer still sees it
