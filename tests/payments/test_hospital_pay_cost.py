"""What a hospital settlement's `pay` sends to the database (issue 15's speed): the statements of its
real work and no more, the same on PostgreSQL and SQLite; the per-worker cache of parsed policy
versions (benefits/policies.py `parsed`) and the database rule it relies on (a stored version is never
changed, migration b0002).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from benefits.models import BenefitPolicy
from payments import idempotency
from tests.benefits.support import policy_doc
from yibao.db import db

from .test_hospital import YEAR, body, policy, token
from .test_pay_cost import pay_statements


@pytest.fixture(autouse=True)
def mid_month(monkeypatch):
    """The statements of an ordinary day: near a month boundary the idempotency claim takes its own
    locking transaction (tests/payments/test_idempotency_boundary.py covers that path)."""
    monkeypatch.setattr(idempotency, "near_month_boundary", lambda _now: False)


@pytest.fixture
def hospital(yb):
    return yb.institution(kind="hospital", name="大理州人民医院", level="tertiary")


def placed(app, pay, inst, p, **kw) -> str:
    r = pay.create(inst, body(token(app, inst, p), **kw))
    assert r.status_code == 201, r.get_json()
    return r.get_json()["pay_order_id"]


def paid(app, pay, inst, p) -> dict:
    r = pay.pay(inst, placed(app, pay, inst, p))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


# PostgreSQL's one statement for the three writes of a paid settlement (hospital_pay._write_paid).
COUNTED_SETTLED_PAID = "UPDATE benefit_totals, hospital_settlements, payment_orders (one WITH statement)"


def statements(app, fn) -> list[str]:
    """pay_statements, the PostgreSQL CTE of the final writes named (it reads "WITH AS" there)."""
    return [COUNTED_SETTLED_PAID if st == "WITH AS" else st for st in pay_statements(app, fn)]


def measured(app, pay, inst, order_id: str, key: str | None = None) -> tuple[list[str], dict]:
    answers = []
    seen = statements(app, lambda: answers.append(pay.pay(inst, order_id, key=key)))
    assert answers[0].status_code == 200, answers[0].get_json()
    return seen, answers[0].get_json()


SETTLEMENT_PAID_FROM_ACCOUNT_AND_CASH = [
    "INSERT idempotency_keys",  # the claim, committed on its own
    "SELECT payment_orders",  # locked, with items, endpoint, clearing/cash ids, payer status, filings
    "INSERT benefit_totals",  # get-or-create of the year's totals, locked, its columns returned (upsert)
    "SELECT hospital_settlements",  # bill, person, level, policy version, fund accounts, first visit today
    "SELECT pay_accounts",  # the payer's account, locked
    # no rules read: the first statement read their version, the worker has them (rule_cache)
    "INSERT supervision_sales",
    "UPDATE pay_accounts",  # the conditional debit
    "INSERT pay_transactions",
    "INSERT pay_entries",
    "UPDATE pay_transactions",  # sealed: the database checks the legs sum to zero
    "UPDATE benefit_totals",  # counted under its lock
    "UPDATE hospital_settlements",  # the final split, what it counted, the policy version applied
    "UPDATE payment_orders",
    "UPDATE idempotency_keys",  # the stored answer, in the payment's transaction
]
# PostgreSQL writes the count, the final split and the paid order in one statement (data-modifying CTEs).
SETTLEMENT_PAID_ON_POSTGRESQL = [
    *SETTLEMENT_PAID_FROM_ACCOUNT_AND_CASH[:10],
    COUNTED_SETTLED_PAID,
    *SETTLEMENT_PAID_FROM_ACCOUNT_AND_CASH[13:],
]


def test_a_settlement_pay_sends_one_statement_per_step(app, yb, pay, hospital, is_postgres):
    policy(yb)
    p = yb.person(balance=20_000)
    # The first settlement opens the fund's and the hospital's accounts and parses the policy (once).
    first = paid(app, pay, hospital, p)
    assert (first["deductible_fen"], first["hifp_pay_fen"], first["account_pay_fen"]) == (5000, 7500, 12500)
    seen, answer = measured(app, pay, hospital, placed(app, pay, hospital, p))
    if is_postgres:
        assert seen == SETTLEMENT_PAID_ON_POSTGRESQL and len(seen) == 12
    else:
        assert seen == SETTLEMENT_PAID_FROM_ACCOUNT_AND_CASH and len(seen) == 14
    # Second visit of the day: no deductible; 50 % of 20000 from the fund, the rest account then cash.
    assert (answer["deductible_fen"], answer["hifp_pay_fen"], answer["fund_pay_fen"]) == (0, 10000, 10000)
    assert (answer["account_pay_fen"], answer["cash_pay_fen"], answer["policy_version"]) == (7500, 2500, 1)
    # The answer is built from memory: it is what a reader of the stored order sees.
    stored = yb.as_user(p, "GET", "/payment-orders/" + answer["pay_order_id"]).get_json()
    assert {k: stored[k] for k in answer if k not in ("warnings",)} == {
        k: v for k, v in answer.items() if k != "warnings"
    }
    assert pay.balance(p) == 0
    pay.reconcile()


def test_the_replay_of_a_settlement_pay_answers_the_same_body_from_the_stored_answer(app, yb, pay, hospital):
    policy(yb)
    p = yb.person(balance=10_000)
    oid = placed(app, pay, hospital, p)
    first = pay.pay(hospital, oid, key="k-hosp-1")
    assert first.status_code == 200, first.get_json()
    answers = []
    seen = statements(app, lambda: answers.append(pay.pay(hospital, oid, key="k-hosp-1")))
    assert answers[0].headers["Idempotent-Replayed"] == "true"
    assert answers[0].get_json() == first.get_json()
    written = {"INSERT benefit_totals", "UPDATE pay_accounts", "UPDATE payment_orders", COUNTED_SETTLED_PAID}
    assert "SELECT payment_orders" not in seen and not written & set(seen)
    assert pay.balance(p) == 0


def test_a_new_policy_version_is_used_by_the_next_settlement(app, yb, pay, hospital):
    policy(yb)
    p = yb.person()
    assert paid(app, pay, hospital, p)["policy_version"] == 1  # version 1 parsed and cached
    policy(yb, doc=policy_doc(**{"outpatient.ratio_pct.tertiary": 80}))
    seen, answer = measured(app, pay, hospital, placed(app, pay, hospital, p))
    assert seen.count("SELECT benefit_policies") == 1  # version 2's document, read once
    assert (answer["policy_version"], answer["hifp_pay_fen"]) == (2, 16000)  # 80 % of 20000
    seen, answer = measured(app, pay, hospital, placed(app, pay, hospital, p))
    assert "SELECT benefit_policies" not in seen  # cached
    assert (answer["policy_version"], answer["hifp_pay_fen"]) == (2, 16000)
    with app.app_context(), db.uow(readonly=True) as uow:
        recorded = uow.session.execute(
            text("SELECT policy_version FROM hospital_settlements ORDER BY order_id")
        ).scalars()
        assert list(recorded) == [1, 2, 2]


def test_a_version_deleted_and_stored_again_is_read_again(app, yb, pay, hospital):
    """Ids and version numbers may come back (a deleted last row, a database emptied and refilled):
    the cache's key also holds the row's created_at, so the new document is the one applied."""
    policy(yb)
    p = yb.person()
    assert paid(app, pay, hospital, p)["hifp_pay_fen"] == 7500
    with app.app_context(), db.uow() as uow:
        uow.session.query(BenefitPolicy).delete()
        uow.commit()
    policy(yb, doc=policy_doc(**{"outpatient.ratio_pct.tertiary": 80}))
    answer = paid(app, pay, hospital, p)
    assert (answer["policy_version"], answer["hifp_pay_fen"]) == (1, 16000)


def test_a_stored_policy_version_cannot_be_modified(app, yb):
    policy(yb)
    with app.app_context():
        with db.uow() as uow, pytest.raises(DBAPIError, match="immutable"):
            uow.session.execute(update(BenefitPolicy).values(document=policy_doc(class_b_self_pay_pct=50)))
            uow.session.flush()
        with db.uow() as uow, pytest.raises(DBAPIError, match="immutable"):
            uow.session.execute(update(BenefitPolicy).values(version=BenefitPolicy.version + 1))
        with db.uow(readonly=True) as uow:
            row = uow.session.scalars(select(BenefitPolicy)).one()
            assert (row.version, row.document["class_b_self_pay_pct"], row.year) == (1, 10, YEAR)


def test_a_settlement_without_an_applicable_policy_writes_nothing(app, yb, pay, hospital):
    """The policy is now looked up after the totals row is locked (and created): the refusal rolls it back."""
    policy(yb)
    p = yb.person(balance=10_000)
    oid = placed(app, pay, hospital, p)
    with app.app_context(), db.uow() as uow:
        uow.session.query(BenefitPolicy).delete()
        uow.commit()
    r = pay.pay(hospital, oid)
    assert r.status_code == 422 and r.get_json()["code"] == "BENEFIT_POLICY_MISSING"
    with app.app_context(), db.uow(readonly=True) as uow:
        assert uow.session.execute(text("SELECT count(*) FROM benefit_totals")).scalar() == 0
        assert uow.session.execute(text("SELECT status FROM payment_orders")).scalar() == "created"
    assert pay.balance(p) == 10_000
