"""What `pay` sends to the database: the statements of its real work and no more (issue 12).

The order's row lock, the payer's status (share-locked), whether any mutual-aid filing names the
payer and supervision's rules version are one statement; the holders are read only when there is a
filing. The enabled rules come from the worker's cache while that version stands (issue 16).
"""

from __future__ import annotations

import pytest

from payments import idempotency
from tests.supervision.support import statement_shapes as pay_statements

from .support import item, trace_code


@pytest.fixture(autouse=True)
def mid_month(monkeypatch):
    """The statements of an ordinary day: near a month boundary the idempotency claim takes its own
    locking transaction (tests/payments/test_idempotency_boundary.py covers that path)."""
    monkeypatch.setattr(idempotency, "near_month_boundary", lambda _now: False)


PAID_FROM_OWN_ACCOUNT = [
    "INSERT idempotency_keys",  # the claim, committed on its own
    "SELECT payment_orders",  # locked, with items, endpoint, clearing/cash ids, payer status, filings,
    # and the supervision rules' version (the rules themselves: the worker's cache)
    "SELECT pay_accounts",  # the payer's account, locked
    "INSERT supervision_sales",
    "INSERT trace_code_settlements",
    "UPDATE pay_accounts",  # the conditional debit
    "INSERT pay_transactions",
    "INSERT pay_entries",
    "UPDATE pay_transactions",  # sealed: the database checks the legs sum to zero
    "UPDATE payment_orders",
    "UPDATE idempotency_keys",  # the stored answer, in the payment's transaction
]


def test_a_plain_pay_sends_one_statement_per_step(app, yb, pay, shop):
    p = yb.person(balance=10_000)
    # The institution's first payment opens its clearing account (a few statements, once), and the
    # worker's first check reads the supervision rules into its cache.
    assert pay.pay(shop, pay.order(shop, p)["pay_order_id"]).status_code == 200
    o = pay.order(shop, p, items=[item(codes=[trace_code()])])
    answers = []
    seen = pay_statements(app, lambda: answers.append(pay.pay(shop, o["pay_order_id"])))
    assert answers[0].status_code == 200, answers[0].get_json()
    assert seen == PAID_FROM_OWN_ACCOUNT
    assert pay.balance(p) == 8_000
    pay.reconcile()


def test_the_replay_of_a_pay_reads_the_stored_answer_only(app, yb, pay, shop):
    p = yb.person(balance=10_000)
    o = pay.order(shop, p)
    assert pay.pay(shop, o["pay_order_id"], key="k-cost-1").status_code == 200
    answers = []
    seen = pay_statements(app, lambda: answers.append(pay.pay(shop, o["pay_order_id"], key="k-cost-1")))
    assert answers[0].headers["Idempotent-Replayed"] == "true"
    assert "SELECT payment_orders" not in seen and "UPDATE pay_accounts" not in seen
    assert pay.balance(p) == 9_000
