"""Fund supervision on hospital orders (issues 15 + 16): the order rules count a hospital item's `item_code`
like a pharmacy's `drug_code`, at POST /payment-orders and again at pay under the person's lock, answering
`warnings` and 422 SUPERVISION_BLOCKED the same way; a (whole) refund gives the units back."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from benefits.models import BenefitTotals
from payments.models import Entry, PaymentOrder
from supervision.models import Sale
from tests.payments.test_hospital import body, policy, token
from tests.payments.test_supervision import alerts, rule, status_of
from tests.supervision.support import StatementCounter
from tests.support import problem
from yibao.db import db


def items(quantity: int, code: str = "XA01") -> list[dict]:
    return [
        {
            "item_code": code,
            "item_name": "头孢",
            "category": "A",
            "quantity": quantity,
            "unit_price_fen": 1000,
        }
    ]


def place(app, pay, inst, p, quantity: int, code: str = "XA01"):
    return pay.create(inst, body(token(app, inst, p), items=items(quantity, code)))


def settle(app, pay, inst, p, quantity: int, code: str = "XA01") -> tuple[dict, dict]:
    r = place(app, pay, inst, p, quantity, code)
    assert r.status_code == 201, r.get_json()
    o = r.get_json()
    r = pay.pay(inst, o["pay_order_id"])
    assert r.status_code == 200, r.get_json()
    return o, r.get_json()


def state(app) -> tuple[int, int, int, int]:
    """(orders, ledger entries, units counted by supervision, settlements in the running totals)."""
    with app.app_context(), db.uow(readonly=True) as uow:
        s = uow.session
        return (
            s.scalar(select(func.count(PaymentOrder.id))),
            s.scalar(select(func.count(Entry.id))),
            s.scalar(select(func.coalesce(func.sum(Sale.quantity - Sale.released), 0))),
            s.scalar(select(func.coalesce(func.sum(BenefitTotals.settlements), 0))),
        )


def test_exactly_at_the_limit_then_one_over_is_blocked(app, yb, pay):
    policy(yb)
    hospital = yb.institution(kind="hospital", name="州医院", level="tertiary")
    p = yb.person(balance=0)
    rid = rule(yb, max_quantity=3)
    o, paid = settle(app, pay, hospital, p, 3)  # 3 of 3: allowed
    assert o["warnings"] == [] and paid["warnings"] == [] and paid["status"] == "paid"
    assert paid["hifp_pay_fen"] == 0  # 3000 in range, all of it under the 5000 deductible
    before = state(app)
    assert before[2] == 3
    err = problem(place(app, pay, hospital, p, 1), 422, "SUPERVISION_BLOCKED")
    assert err["violations"] == [
        {
            "rule_id": rid,
            "kind": "quantity_limit",
            "evidence": {
                "drug_code": "XA01",
                "window_days": 30,
                "max_quantity": 3,
                "counted_quantity": 3,
                "this_order_quantity": 1,
                "total_quantity": 4,
            },
        }
    ]
    assert state(app) == before  # no order, no ledger entry, nothing counted
    assert [a[1:] for a in alerts(app)] == [("create", "block")]  # the refusal's alert is kept
    # another code is not limited
    _, other = settle(app, pay, hospital, p, 5, code="XB02")
    assert other["warnings"] == []


def test_a_rule_added_before_pay_blocks_the_pay_and_the_order_stays_created(app, yb, pay):
    policy(yb)
    hospital = yb.institution(kind="hospital", name="州医院", level="tertiary")
    p = yb.person(balance=10_000)
    r = place(app, pay, hospital, p, 3)
    assert r.status_code == 201 and r.get_json()["warnings"] == []
    oid = r.get_json()["pay_order_id"]
    rule(yb, max_quantity=2)
    before = state(app)
    err = problem(pay.pay(hospital, oid), 422, "SUPERVISION_BLOCKED")
    assert err["violations"][0]["evidence"]["total_quantity"] == 3
    assert status_of(app, oid) == "created" and state(app) == before
    assert pay.balance(p) == 10_000
    assert alerts(app) == [(oid, "pay", "block")]


def test_warn_rule_lets_it_through_with_warnings_at_create_and_pay(app, yb, pay):
    policy(yb)
    hospital = yb.institution(kind="hospital", name="州医院", level="tertiary")
    p = yb.person()
    settle(app, pay, hospital, p, 2)
    rid = rule(yb, "warn", max_quantity=2)
    o, paid = settle(app, pay, hospital, p, 1)
    for got in (o, paid):
        assert [(w["rule_id"], w["kind"], w["evidence"]["total_quantity"]) for w in got["warnings"]] == [
            (rid, "quantity_limit", 3)
        ]
    assert paid["status"] == "paid"
    assert alerts(app) == [(o["pay_order_id"], "create", "warn"), (o["pay_order_id"], "pay", "warn")]
    assert state(app)[2] == 3


def test_refund_gives_the_units_back(app, yb, pay):
    policy(yb)
    hospital = yb.institution(kind="hospital", name="州医院", level="tertiary")
    p = yb.person()
    rule(yb, max_quantity=2)
    _, first = settle(app, pay, hospital, p, 2)
    problem(place(app, pay, hospital, p, 1), 422, "SUPERVISION_BLOCKED")
    r = pay.refund(hospital, first["pay_order_id"], {"reason": "退费"})
    assert r.status_code == 201, r.get_json()
    assert state(app)[2] == 0
    _, again = settle(app, pay, hospital, p, 2)  # back under: 0 + 2 = 2, at the limit
    assert again["status"] == "paid" and again["warnings"] == []


def test_pharmacy_and_hospital_sales_count_together(app, yb, pay):
    """Units of one code at any institution count; repeat_purchase counts the hospital as an institution."""
    policy(yb)
    hospital = yb.institution(kind="hospital", name="州医院", level="tertiary")
    shop = yb.institution(kind="online_pharmacy", name="线上药房")
    p = yb.person(balance=10_000)
    o = pay.order(shop, p, items=[{**_otc(2)}])
    assert pay.pay(shop, o["pay_order_id"]).status_code == 200
    rule(yb, max_quantity=3)
    r = yb.admin(
        "POST",
        "/supervision-rules",
        {
            "kind": "repeat_purchase",
            "params": {"drug_code": "XA01", "window_days": 30, "max_institutions": 1},
            "action": "warn",
        },
    )
    assert r.status_code == 201, r.get_json()
    err = problem(place(app, pay, hospital, p, 2), 422, "SUPERVISION_BLOCKED")
    assert err["violations"][0]["evidence"]["counted_quantity"] == 2
    o, paid = settle(app, pay, hospital, p, 1)
    assert [w["kind"] for w in paid["warnings"]] == ["repeat_purchase"]
    assert paid["warnings"][0]["evidence"]["institutions"] == 2


def _otc(quantity: int) -> dict:
    return {
        "drug_code": "XA01",
        "drug_name": "头孢",
        "otc": True,
        "quantity": quantity,
        "unit_price_fen": 1000,
        "trace_codes": [],
    }


def test_the_pay_reads_the_rules_version_first_and_another_worker_s_rule_applies(app, app_config, yb, pay):
    """Issue 16: hospital pay takes the rules' version from pay's first statement (no read of the
    rules while the worker's cache holds it); a rule made through another worker blocks the next pay."""
    from supervision import rule_cache
    from tests.support import Yb
    from yibao import create_app

    from .support import Pay

    policy(yb)
    hospital = yb.institution(kind="hospital", name="州医院", level="tertiary")
    p = yb.person(balance=10_000)
    settle(app, pay, hospital, p, 1)  # the worker's cache holds the rules (none)
    oid = place(app, pay, hospital, p, 3).get_json()["pay_order_id"]
    loads = app.extensions[rule_cache.EXTENSION].loads
    o2 = place(app, pay, hospital, p, 1).get_json()["pay_order_id"]
    with app.app_context():
        engine = db.engine
    with StatementCounter(engine) as counter:
        assert pay.pay(hospital, o2).status_code == 200
    first = next(s for s in counter.statements if s.startswith("SELECT payment_orders"))
    assert "supervision_rules_state" in first
    assert not any(re.search(r"FROM supervision_rules\b", s) for s in counter.statements)
    assert app.extensions[rule_cache.EXTENSION].loads == loads
    other = create_app(app_config)
    try:
        rule(Yb(other.test_client()), max_quantity=4)  # 2 counted + 3 = 5 > 4
        err = problem(Pay(yb).pay(hospital, oid), 422, "SUPERVISION_BLOCKED")
        assert err["violations"][0]["evidence"]["total_quantity"] == 5
    finally:
        other.extensions["yibao.db"]["engine"].dispose()
