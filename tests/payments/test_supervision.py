"""Fund supervision at the point of sale, through the payments API: checked at create and at pay,
counted with the payment, given back by refunds; a block is a stored, replayable refusal."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from payments.models import PaymentOrder
from supervision.models import Alert, Sale
from tests.supervision.support import StatementCounter, set_enabled
from tests.supervision.support import quantity_rule as rule
from tests.support import problem
from yibao.db import db

from .support import item, trace_code
from .test_concurrency import gunicorn, signed, together


def alerts(app) -> list[tuple[str, str, str]]:
    """(subject_ref, stage, action) of every alert, oldest first."""
    with app.app_context(), db.uow(readonly=True) as uow:
        rows = uow.session.execute(select(Alert.subject_ref, Alert.stage, Alert.action).order_by(Alert.id))
        return [tuple(r) for r in rows]


def status_of(app, pay_order_id: str) -> str:
    with app.app_context(), db.uow(readonly=True) as uow:
        return uow.session.scalar(
            select(PaymentOrder.status).where(PaymentOrder.pay_order_id == pay_order_id)
        )


def buy(pay, shop, p, quantity: int, **kw) -> dict:
    """Place and pay an order of `quantity` units of XA01; the paid answer."""
    o = pay.order(shop, p, items=[item(quantity=quantity, **kw)])
    r = pay.pay(shop, o["pay_order_id"])
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_no_rule_answers_empty_warnings_and_counts_the_sale(app, yb, pay, shop):
    p = yb.person(balance=10_000)
    o = pay.order(shop, p, items=[item(quantity=2), item(quantity=1, drug_code="XB02")])
    assert o["warnings"] == []
    paid = pay.pay(shop, o["pay_order_id"]).get_json()
    assert paid["status"] == "paid" and paid["warnings"] == []
    with app.app_context(), db.uow(readonly=True) as uow:
        rows = uow.session.execute(select(Sale.code, Sale.quantity, Sale.order_ref).order_by(Sale.code))
        assert [tuple(r) for r in rows] == [("XA01", 2, o["pay_order_id"]), ("XB02", 1, o["pay_order_id"])]


def test_create_refused_is_replayed_and_a_new_key_after_disabling_succeeds(app, yb, pay, shop):
    p = yb.person(balance=10_000)
    rid = rule(yb, max_quantity=2)
    body = pay.order_body(pay.pay_auth(p), items=[item(quantity=3)])
    first = pay.create(shop, body, key="sup-create-1")
    err = problem(first, 422, "SUPERVISION_BLOCKED")
    assert err["violations"] == [
        {
            "rule_id": rid,
            "kind": "quantity_limit",
            "evidence": {
                "drug_code": "XA01",
                "window_days": 30,
                "max_quantity": 2,
                "counted_quantity": 0,
                "this_order_quantity": 3,
                "total_quantity": 3,
            },
        }
    ]
    # the refusal rolled the order back but its alert was recorded afresh, once
    assert [(s, a) for _, s, a in alerts(app)] == [("create", "block")]
    again = pay.create(shop, body, key="sup-create-1")
    assert again.status_code == 422 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert len(alerts(app)) == 1
    set_enabled(yb, rid, False)
    assert pay.create(shop, body, key="sup-create-1").get_json() == first.get_json()  # still the replay
    ok = pay.create(shop, body, key="sup-create-2")  # the pay authorization was not consumed
    assert ok.status_code == 201, ok.get_json()
    assert ok.get_json()["warnings"] == []


def test_exactly_at_the_limit_is_allowed_one_over_is_blocked(app, yb, pay, shop):
    p = yb.person(balance=10_000)
    rule(yb, max_quantity=3)
    assert buy(pay, shop, p, 2)["warnings"] == []
    at_limit = pay.order(shop, p, items=[item(quantity=1)])
    assert at_limit["warnings"] == []
    assert pay.pay(shop, at_limit["pay_order_id"]).status_code == 200
    over = pay.create(shop, pay.order_body(pay.pay_auth(p), items=[item(quantity=1)]))
    body = problem(over, 422, "SUPERVISION_BLOCKED")
    assert body["violations"][0]["evidence"]["total_quantity"] == 4
    # another drug, or another person, is not counted
    assert pay.order(shop, p, items=[item(quantity=5, drug_code="XB02")])["warnings"] == []
    assert pay.order(shop, yb.person(balance=10_000), items=[item(quantity=3)])["warnings"] == []


def test_rule_added_between_create_and_pay_refuses_the_pay_and_leaves_the_order_created(app, yb, pay, shop):
    p = yb.person(balance=10_000)
    o = pay.order(shop, p, items=[item(quantity=3, price=500)])
    rule(yb, max_quantity=2)
    r = pay.pay(shop, o["pay_order_id"], key="sup-pay-1")
    problem(r, 422, "SUPERVISION_BLOCKED")
    assert status_of(app, o["pay_order_id"]) == "created"
    assert pay.balance(p) == 10_000
    assert alerts(app) == [(o["pay_order_id"], "pay", "block")]
    replay = pay.pay(shop, o["pay_order_id"], key="sup-pay-1")
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.get_json() == r.get_json()
    with app.app_context(), db.uow(readonly=True) as uow:
        assert uow.session.scalar(select(Sale.id)) is None  # a refused pay counts nothing


def test_rule_disabled_between_order_and_pay_no_longer_applies(app, yb, pay, shop):
    p = yb.person(balance=10_000)
    rid = rule(yb, max_quantity=2)
    a = pay.order(shop, p, items=[item(quantity=2)])
    b = pay.order(shop, p, items=[item(quantity=1)])  # unpaid orders do not count: allowed at create
    assert pay.pay(shop, a["pay_order_id"]).status_code == 200
    problem(pay.pay(shop, b["pay_order_id"]), 422, "SUPERVISION_BLOCKED")  # 2 paid + 1 > 2
    set_enabled(yb, rid, False)
    r = pay.pay(shop, b["pay_order_id"])  # a new key: checked against the rules of now
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["warnings"] == []


def test_warn_rule_lets_it_through_with_warnings_and_alerts(app, yb, pay, shop):
    p = yb.person(balance=10_000)
    rid = rule(yb, "warn", max_quantity=1)
    o = pay.order(shop, p, items=[item(quantity=2)])
    expected = [
        {
            "rule_id": rid,
            "kind": "quantity_limit",
            "evidence": {
                "drug_code": "XA01",
                "window_days": 30,
                "max_quantity": 1,
                "counted_quantity": 0,
                "this_order_quantity": 2,
                "total_quantity": 2,
            },
        }
    ]
    assert o["warnings"] == expected
    paid = pay.pay(shop, o["pay_order_id"])
    assert paid.status_code == 200 and paid.get_json()["warnings"] == expected
    assert alerts(app) == [(o["pay_order_id"], "create", "warn"), (o["pay_order_id"], "pay", "warn")]
    # the operator's list shows them too
    listed = yb.admin("GET", f"/supervision-alerts?rule_id={rid}").get_json()["items"]
    assert [(a["stage"], a["action"]) for a in listed] == [("create", "warn"), ("pay", "warn")]


def test_partial_refund_of_a_box_brings_the_person_back_under(app, yb, pay, shop):
    p = yb.person(balance=10_000)
    rule(yb, max_quantity=2)
    codes = [trace_code(), trace_code()]
    paid = buy(pay, shop, p, 2, price=1000, codes=codes)
    problem(pay.create(shop, pay.order_body(pay.pay_auth(p), items=[item()])), 422, "SUPERVISION_BLOCKED")
    # a partial refund naming no box gives back no units
    assert pay.refund(shop, paid["pay_order_id"], {"reason": "差价", "amount_fen": 100}).status_code == 201
    problem(pay.create(shop, pay.order_body(pay.pay_auth(p), items=[item()])), 422, "SUPERVISION_BLOCKED")
    r = pay.refund(
        shop, paid["pay_order_id"], {"reason": "退一盒", "amount_fen": 1000, "trace_codes": codes[:1]}
    )
    assert r.status_code == 201, r.get_json()
    assert buy(pay, shop, p, 1)["warnings"] == []  # 2 - 1 + 1 = 2: at the limit again


def test_whole_refund_gives_every_unit_back(app, yb, pay, shop):
    p = yb.person(balance=10_000)
    rule(yb, max_quantity=3)
    paid = buy(pay, shop, p, 3)
    problem(pay.create(shop, pay.order_body(pay.pay_auth(p), items=[item()])), 422, "SUPERVISION_BLOCKED")
    assert pay.refund(shop, paid["pay_order_id"]).status_code == 201
    assert buy(pay, shop, p, 3)["warnings"] == []


def supervision_statements(app, fn) -> list[str]:
    with app.app_context():
        engine = db.engine
    with StatementCounter(engine) as counter:
        fn()
    return [" ".join(st.split()[:3]) for st in counter.statements if "supervision_" in st]


# With no enabled rule on the order's codes: the rules' version rides on pay's first statement (the
# rules themselves come from the worker's cache), then the sale's one insert.
CHEAP_PAY = ["SELECT payment_orders.id, payment_orders.pay_order_id,", "INSERT INTO supervision_sales"]


def test_without_an_enabled_rule_pay_costs_the_sale_insert_only(app, yb, pay, shop):
    p = yb.person(balance=10_000)
    rid = rule(yb, code="XB02")  # another drug's rule is not even read
    o = pay.order(shop, p, items=[item(quantity=2)])
    seen = supervision_statements(app, lambda: pay.pay(shop, o["pay_order_id"]))
    assert seen == CHEAP_PAY
    assert "supervision_rules_state" in _first_pay_statement(app, pay, shop, p)
    set_enabled(yb, rid, False)
    o = pay.order(shop, p, items=[item(quantity=2, drug_code="XB02")])  # create reloads the rules
    seen = supervision_statements(app, lambda: pay.pay(shop, o["pay_order_id"]))
    assert seen == CHEAP_PAY


def _first_pay_statement(app, pay, shop, p) -> str:  # type: ignore[no-untyped-def]
    o = pay.order(shop, p, items=[item(quantity=1)])
    with app.app_context():
        engine = db.engine
    with StatementCounter(engine) as counter:
        pay.pay(shop, o["pay_order_id"])
    return next(st for st in counter.statements if st.startswith("SELECT payment_orders"))


@pytest.fixture
def pg_only(is_postgres):
    if not is_postgres:
        pytest.skip("races need PostgreSQL: SQLite serializes all writers")


@pytest.mark.slow
def test_two_counters_race_for_the_last_allowed_box_exactly_one_sells(app, yb, pay, tmp_path, pg_only):
    """Real gunicorn workers; each round, two counters pay an order of the person's last allowed box."""
    rounds = 4
    counters = [yb.institution(kind="online_pharmacy", name=f"药房{i}") for i in range(2)]
    people = [yb.person(balance=10_000) for _ in range(rounds)]
    orders = [[pay.order(c, p, items=[item(quantity=1)]) for c in counters] for p in people]
    rule(yb, max_quantity=1)  # after the orders: only pay can refuse
    flat = [(counters[i % 2], orders[i // 2][i % 2]["pay_order_id"]) for i in range(2 * rounds)]
    with gunicorn(app, tmp_path, workers=4) as url:
        results = together(
            len(flat),
            lambda i: signed(url, flat[i][0], "POST", f"/payment-orders/{flat[i][1]}/pay", key=f"race-{i}"),
        )
    for r in range(rounds):
        pair = results[2 * r : 2 * r + 2]
        assert Counter(x.status_code for x in pair) == {200: 1, 422: 1}, [x.text for x in pair]
        assert [x.json()["code"] for x in pair if x.status_code == 422] == ["SUPERVISION_BLOCKED"]
    with app.app_context(), db.uow(readonly=True) as uow:
        paid = uow.session.scalars(select(PaymentOrder.status)).all()
        assert Counter(paid) == {"paid": rounds, "created": rounds}
        assert len(uow.session.scalars(select(Sale.id)).all()) == rounds
