"""Exactly-once under real concurrency: a gunicorn server with several worker processes, many clients.

The money races run on PostgreSQL only (SQLite serializes every writer, so there is no race to lose);
the crash test runs on both databases.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from payments.models import Entry, IdempotencyKey, LedgerTransaction, PaymentOrder, TraceCodeSettlement
from tests import servers
from tests.support import ADMIN_TOKEN, TEST_SECRET, sign_headers
from yibao.db import db

from .support import item, trace_code

pytestmark = pytest.mark.slow


@contextmanager
def gunicorn(app, tmp_path: Path, *, workers: int = 4, env: dict[str, str] | None = None) -> Iterator[str]:
    """The real service on a free port, against the test's database and Redis."""
    settings = {
        "DATABASE_URL": app.config["DATABASE_URL"],
        "REDIS_URL": app.config["REDIS_URL"],
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "SECRET_KEY": TEST_SECRET,
        "YIBAO_IDEMPOTENCY_LOCK_SECONDS": "2",
        **(env or {}),
    }
    with servers.gunicorn(settings, workers=workers, log_dir=tmp_path) as url:
        yield url


def signed(url: str, inst, method: str, path: str, body: dict | None = None, key: str | None = None):
    raw = b"" if body is None else json.dumps(body).encode()
    full = f"/api/v1{path}"
    headers = sign_headers(inst.key_id, inst.secret, method, full, raw)
    if raw:
        headers["Content-Type"] = "application/json"
    if key:
        headers["Idempotency-Key"] = key
    return requests.request(method, url + full, data=raw, headers=headers, timeout=60)


def together(n: int, fn) -> list:
    """Run fn(i) in n threads released at the same instant."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:  # surfaced by the assertions
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _check_ledger(pay):
    body = pay.reconcile()
    assert body["negative_balances"] == 0 and body["ledger_total_fen"] == 0


@pytest.fixture
def pg_only(is_postgres):
    if not is_postgres:
        pytest.skip("races need PostgreSQL: SQLite serializes all writers")


@pytest.mark.parametrize("account_only", [False, True])
def test_50_concurrent_pays_against_an_account_that_covers_10(
    app, yb, pay, shop, tmp_path, pg_only, account_only
):
    p = yb.person(balance=10 * 1000)
    orders = [pay.order(shop, p, items=[item(price=1000)], account_only=account_only) for _ in range(50)]
    with gunicorn(app, tmp_path, workers=4) as url:
        results = together(
            50,
            lambda i: signed(
                url, shop, "POST", f"/payment-orders/{orders[i]['pay_order_id']}/pay", key=f"pay-{i}"
            ),
        )
    statuses = Counter(r.status_code for r in results)
    bodies = [r.json() for r in results]
    from_account = [b for b in bodies if b.get("status") == "paid" and b["account_pay_fen"] == 1000]
    assert len(from_account) == 10
    if account_only:
        assert statuses == {200: 10, 409: 40}
        assert all(b["code"] == "INSUFFICIENT_BALANCE" for b in bodies if b.get("code"))
    else:
        assert statuses == {200: 50}
        assert sum(1 for b in bodies if b["account_pay_fen"] == 0 and b["cash_pay_fen"] == 1000) == 40
    assert pay.balance(p) == 0
    _check_ledger(pay)


def test_20_concurrent_requests_with_one_key_have_one_effect(app, yb, pay, shop, tmp_path, pg_only):
    p = yb.person(balance=100_000)
    body = pay.order_body(pay.pay_auth(p), items=[item(price=1000)])
    with gunicorn(app, tmp_path, workers=4) as url:
        created = together(20, lambda i: signed(url, shop, "POST", "/payment-orders", body, key="one-key"))
        codes = Counter(r.status_code for r in created)
        assert set(codes) <= {201, 409}, codes
        assert codes[201] >= 1
        ids = {r.json()["pay_order_id"] for r in created if r.status_code == 201}
        assert len(ids) == 1
        assert all(r.json()["code"] == "IDEMPOTENCY_KEY_IN_USE" for r in created if r.status_code == 409)
        (order_id,) = ids
        paid = together(
            20, lambda i: signed(url, shop, "POST", f"/payment-orders/{order_id}/pay", key="pay-key")
        )
        codes = Counter(r.status_code for r in paid)
        assert set(codes) <= {200, 409} and codes[200] >= 1, codes
        # once the first finished, a retry replays it
        again = signed(url, shop, "POST", f"/payment-orders/{order_id}/pay", key="pay-key")
        assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    with app.app_context(), db.uow(readonly=True) as uow:
        assert uow.session.scalar(select(func.count(PaymentOrder.id))) == 1
        assert (
            uow.session.scalar(
                select(func.count(LedgerTransaction.id)).where(LedgerTransaction.kind == "payment")
            )
            == 1
        )
    assert pay.balance(p) == 99_000
    _check_ledger(pay)


def test_same_trace_code_in_two_concurrent_orders_settles_once(app, yb, pay, shop, tmp_path, pg_only):
    rounds = 5
    pairs = []
    for _ in range(rounds):
        code = trace_code()
        a, b = yb.person(balance=5000), yb.person(balance=5000)
        pairs.append([pay.order(shop, x, items=[item(codes=[code])]) for x in (a, b)])
    flat = [o for pair in pairs for o in pair]
    with gunicorn(app, tmp_path, workers=4) as url:
        results = together(
            len(flat),
            lambda i: signed(
                url, shop, "POST", f"/payment-orders/{flat[i]['pay_order_id']}/pay", key=f"k{i}"
            ),
        )
    for r in range(rounds):
        pair = results[2 * r : 2 * r + 2]
        assert sorted(x.status_code for x in pair) == [200, 409], [x.text for x in pair]
        assert [x.json()["code"] for x in pair if x.status_code == 409] == ["TRACE_CODE_ALREADY_SETTLED"]
    _check_ledger(pay)


@pytest.mark.parametrize("point", ["pay.after_debit", "pay.before_commit"])
def test_worker_killed_mid_pay_leaves_the_order_whole(app, yb, pay, shop, tmp_path, point):
    """os._exit inside pay's transaction: after restart the order is unpaid and retryable, never half-paid."""
    p = yb.person(balance=5000)
    o = pay.order(shop, p, items=[item(price=1000, codes=[trace_code()])])
    faulty = gunicorn(app, tmp_path, workers=2, env={"YIBAO_FAULT_INJECTION": point})
    with faulty as url, pytest.raises(requests.ConnectionError):
        signed(url, shop, "POST", f"/payment-orders/{o['pay_order_id']}/pay", key="crash-key")
    with app.app_context(), db.uow(readonly=True) as uow:
        order = uow.session.scalar(select(PaymentOrder))
        assert order.status == "created" and order.paid_at is None
        assert uow.session.scalar(select(func.count(Entry.id)).where(Entry.amount_fen == -1000)) == 0
        assert uow.session.scalar(select(func.count(TraceCodeSettlement.id))) == 0
        key = uow.session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == "crash-key"))
        assert key.state == "in_progress"
    assert pay.balance(p) == 5000
    _check_ledger(pay)
    with gunicorn(app, tmp_path, workers=2) as url:
        # the crashed claim blocks retries only until its lease (2 s here) runs out
        deadline = time.time() + 10
        while True:
            r = signed(url, shop, "POST", f"/payment-orders/{o['pay_order_id']}/pay", key="crash-key")
            if r.status_code != 409 or time.time() > deadline:
                break
            assert r.json()["code"] == "IDEMPOTENCY_KEY_IN_USE"
            time.sleep(0.5)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "paid"
    assert pay.balance(p) == 4000
    _check_ledger(pay)
