"""Idempotency keys across a month boundary (issue 12): keys are kept per UTC month (the partition
key on PostgreSQL), so a retry in the next month must still find the first claim, never run twice.

The boundary is faked: payments.idempotency takes its clock from `utcnow`, patched here to the last
second of this month and the first of the next (both month partitions exist on PostgreSQL).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, literal_column, select

from payments import idempotency, queries
from payments.models import IdempotencyKey, PaymentOrder
from tests.support import problem
from yibao.db import db, utcnow
from yibao.errors import AppError
from yibao.partitions import add_months, month_start
from yibao.registry import services as registry

BOUNDARY = add_months(month_start(utcnow()), 1)  # the start of next month
BEFORE, AFTER = BOUNDARY - timedelta(seconds=1), BOUNDARY + timedelta(seconds=1)


class Clock:
    def __init__(self, at) -> None:
        self.at = at

    def __call__(self):
        return self.at


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock(BEFORE)
    monkeypatch.setattr(idempotency, "utcnow", c)
    return c


def _orders(app) -> int:
    with app.app_context(), db.uow(readonly=True) as uow:
        return uow.session.scalar(select(func.count(PaymentOrder.id)))


def _keys(app, key: str) -> list[tuple]:
    """(period_start, partition) of every row of the key."""
    with app.app_context(), db.uow(readonly=True) as uow:
        part = "tableoid::regclass::text" if uow.dialect == "postgresql" else "'idempotency_keys'"
        stmt = (
            select(IdempotencyKey.period_start, literal_column(part))
            .where(IdempotencyKey.key == key)
            .order_by(IdempotencyKey.id)
        )
        return [tuple(r) for r in uow.session.execute(stmt)]


def test_a_retry_across_the_month_boundary_replays_and_runs_once(app, yb, pay, shop, clock):
    p = yb.person(balance=5000)
    body = pay.order_body(pay.pay_auth(p))
    first = pay.create(shop, body, key="k-boundary")
    assert first.status_code == 201, first.get_json()
    clock.at = AFTER  # the retry comes in next month
    again = pay.create(shop, body, key="k-boundary")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert _orders(app) == 1
    rows = _keys(app, "k-boundary")
    assert len(rows) == 1  # no second claim in next month's partition
    if rows[0][1] != "idempotency_keys":  # PostgreSQL: the row sits in this month's partition
        assert rows[0][1] == f"idempotency_keys_p{BEFORE.year:04d}{BEFORE.month:02d}"
    # the same key with another body next month is still refused
    problem(
        pay.create(shop, pay.order_body(pay.pay_auth(p)), key="k-boundary"), 422, "IDEMPOTENCY_KEY_REUSED"
    )
    assert _orders(app) == 1


def test_without_the_boundary_check_the_retry_would_run_twice(app, yb, pay, shop, clock, monkeypatch):
    """The hazard itself: the unique key holds per month only. With the neighbour look switched off
    the retry next month claims afresh and creates a second order; this is what begin() prevents."""
    monkeypatch.setattr(idempotency, "near_month_boundary", lambda _now: False)
    p = yb.person(balance=5000)
    body = pay.order_body(pay.pay_auth(p))
    assert pay.create(shop, body, key="k-hazard").status_code == 201
    clock.at = AFTER
    second = pay.create(shop, body, key="k-hazard")
    assert "Idempotent-Replayed" not in second.headers  # executed again (refused: same merchant_order_no)
    assert len(_keys(app, "k-hazard")) == 2


def _inst_id(app, org_id: str) -> int:
    with app.app_context(), db.uow(readonly=True) as uow:
        return registry.institution_by_org_id(uow, org_id).id


def _begin(app, inst_id: int, key: str, now, lock_seconds: float = 30):
    with app.app_context(), db.uow() as uow:
        return idempotency.begin(
            uow, institution_id=inst_id, key=key, req_hash="h" * 64, lock_seconds=lock_seconds, now=now
        )


def test_in_progress_claim_of_last_month_is_in_use_next_month(app, yb, shop):
    inst_id = _inst_id(app, shop.org_id)
    assert isinstance(_begin(app, inst_id, "k-run", BEFORE), idempotency.Claim)
    with pytest.raises(AppError) as exc:
        _begin(app, inst_id, "k-run", AFTER)
    assert exc.value.code == "IDEMPOTENCY_KEY_IN_USE"


def test_a_key_of_last_month_past_its_24h_is_claimed_afresh(app, yb, shop):
    inst_id = _inst_id(app, shop.org_id)
    old = BOUNDARY - timedelta(hours=2)
    assert isinstance(_begin(app, inst_id, "k-old", old), idempotency.Claim)
    later = BOUNDARY + timedelta(hours=23)  # 25 h after the first claim: the key has expired
    claim = _begin(app, inst_id, "k-old", later)
    assert isinstance(claim, idempotency.Claim)
    assert [r[0] for r in _keys(app, "k-old")] == [month_start(old), BOUNDARY]


def test_mid_month_claims_take_the_one_statement_path():
    mid = month_start(utcnow()) + timedelta(days=10)
    assert not idempotency.near_month_boundary(mid)
    assert idempotency.near_month_boundary(BOUNDARY + timedelta(hours=24, minutes=5))  # 24 h + margin
    assert not idempotency.near_month_boundary(BOUNDARY + timedelta(hours=24, minutes=11))
    assert idempotency.near_month_boundary(BOUNDARY - timedelta(minutes=9))
    assert not idempotency.near_month_boundary(BOUNDARY - timedelta(minutes=11))


def test_concurrent_claims_on_both_sides_of_the_boundary_serialize(app, yb, shop, is_postgres):
    """A claim next month waits for one still running this month (the key's advisory lock), then sees
    it: without the lock it would not see the uncommitted row and would claim a second time."""
    if not is_postgres:
        pytest.skip("PostgreSQL only: SQLite's single write lock already serializes the two claims")
    inst_id = _inst_id(app, shop.org_id)
    outcome: list = []

    def next_month() -> None:
        try:
            outcome.append(_begin(app, inst_id, "k-race", AFTER))
        except AppError as exc:
            outcome.append(exc.code)

    with app.app_context(), db.uow() as uow:  # this month's claim, still in its transaction
        queries.lock_idempotency_key(uow, inst_id, "k-race")
        values = idempotency._claim_values(inst_id, "k-race", "h" * 64, 30, BEFORE)
        assert idempotency._insert_claim(uow, values) is not None
        t = threading.Thread(target=next_month)
        t.start()
        t.join(0.5)
        assert t.is_alive() and not outcome  # waiting on the key's lock
        uow.commit()
    t.join(10)
    assert outcome == ["IDEMPOTENCY_KEY_IN_USE"]
    with app.app_context(), db.uow(readonly=True) as uow:
        n = uow.session.scalar(select(func.count(IdempotencyKey.id)).where(IdempotencyKey.key == "k-race"))
    assert n == 1


def test_a_crashed_claim_of_last_month_taken_over_keeps_its_expiry(app, yb, shop):
    """Taken over next month (its lease ran out), the claim keeps the 24 h of its first claim: a key
    that lived on past the boundary window would not be found from next month's partition."""
    inst_id = _inst_id(app, shop.org_id)
    first = _begin(app, inst_id, "k-crash", BEFORE, lock_seconds=0.5)
    assert isinstance(first, idempotency.Claim)
    taken = _begin(app, inst_id, "k-crash", AFTER)
    assert isinstance(taken, idempotency.Claim) and taken.id == first.id and taken.token != first.token
    with app.app_context(), db.uow(readonly=True) as uow:
        row = uow.session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == "k-crash"))
    assert (row.period_start, row.created_at, row.expires_at) == (
        month_start(BEFORE),
        BEFORE,
        BEFORE + idempotency.RETENTION,
    )
