"""Webhooks delivered to a real HTTP receiver with Standard-Webhooks signatures; daily statements."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select, update

from payments import webhooks
from payments.models import WebhookEvent
from tests.support import problem
from yibao.china_time import china_date
from yibao.db import db, utcnow

from .support import item


class Receiver:
    """A merchant's webhook endpoint on a loopback thread; `fail` makes it answer 500."""

    def __init__(self) -> None:
        self.received: list[tuple[dict, bytes]] = []
        self.fail = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.fail:
                    self.send_response(500)
                else:
                    outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _endpoint(yb, inst, url):
    r = yb.admin("PUT", f"/institutions/{inst.org_id}/webhook", {"url": url})
    assert r.status_code == 200, r.get_json()
    secret = r.get_json()["secret"]
    assert secret.startswith("whsec_")
    assert yb.admin("GET", f"/institutions/{inst.org_id}/webhook").get_json()["secret"] == secret
    return secret


def _deliver(app):
    with app.app_context():
        return webhooks.deliver_due(db.engine)


def _events(app):
    with app.app_context(), db.uow(readonly=True) as uow:
        return list(uow.session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


def test_paid_refunded_cancelled_are_delivered_and_signed(app, yb, pay, shop, receiver, runner):
    secret = _endpoint(yb, shop, receiver.url)
    p = yb.person(balance=5000)
    o = pay.order(shop, p)
    assert pay.pay(shop, o["pay_order_id"]).status_code == 200
    assert pay.refund(shop, o["pay_order_id"]).status_code == 201
    c = pay.order(shop, p)
    assert yb.as_institution(shop, "POST", f"/payment-orders/{c['pay_order_id']}/cancel").status_code == 200
    out = runner.invoke(args=["webhooks", "run", "--once"])
    assert out.exit_code == 0, out.output
    assert len(receiver.received) == 3
    types = []
    for headers, body in receiver.received:
        assert webhooks.verify(secret, headers, body)
        assert not webhooks.verify(secret, headers, body + b" ")
        assert headers["webhook-id"].startswith("msg_")
        assert headers["webhook-signature"].startswith("v1,")
        payload = json.loads(body)
        types.append(payload["type"])
    assert types == ["payment.paid", "payment.refunded", "payment.cancelled"]
    assert json.loads(receiver.received[0][1])["data"]["pay_order_id"] == o["pay_order_id"]
    assert all(e.state == "delivered" for e in _events(app))
    assert _deliver(app) == {"delivered": 0, "retry": 0, "dead": 0}  # nothing is sent twice


def test_failed_delivery_is_retried_with_backoff_from_the_database(app, yb, pay, shop, receiver):
    _endpoint(yb, shop, receiver.url)
    p = yb.person(balance=5000)
    o = pay.order(shop, p)
    assert pay.pay(shop, o["pay_order_id"]).status_code == 200
    receiver.fail = True
    assert _deliver(app)["retry"] == 1
    (ev,) = _events(app)
    assert ev.attempts == 1 and ev.state == "pending" and ev.last_error == "HTTP 500"
    wait = (ev.next_attempt_at - utcnow()).total_seconds()
    assert webhooks.BASE_DELAY * 0.4 < wait <= webhooks.BASE_DELAY * 1.5
    assert _deliver(app)["retry"] == 0  # not due yet
    # a new worker (fresh engine, as after a restart) picks it up once due
    receiver.fail = False
    with app.app_context(), db.uow() as uow:
        uow.session.execute(update(WebhookEvent).values(next_attempt_at=utcnow()))
        uow.commit()
    assert _deliver(app)["delivered"] == 1
    assert len(receiver.received) == 1
    assert _events(app)[0].attempts == 2


def test_backoff_grows_exponentially_with_jitter():
    lows = [webhooks.backoff(n, rng=lambda: 0.0) for n in range(1, 8)]
    highs = [webhooks.backoff(n, rng=lambda: 0.999) for n in range(1, 8)]
    assert all(b == 2 * a for a, b in zip(lows, lows[1:], strict=False))
    assert all(h > lo for lo, h in zip(lows, highs, strict=True))
    assert webhooks.backoff(50, rng=lambda: 0.5) == webhooks.MAX_DELAY


def test_gives_up_after_max_attempts(app, yb, pay, shop):
    _endpoint(yb, shop, "http://127.0.0.1:9/closed")
    p = yb.person(balance=5000)
    assert pay.pay(shop, pay.order(shop, p)["pay_order_id"]).status_code == 200
    with app.app_context(), db.uow() as uow:
        uow.session.execute(update(WebhookEvent).values(attempts=webhooks.MAX_ATTEMPTS - 1))
        uow.commit()
    assert _deliver(app)["dead"] == 1
    assert _events(app)[0].state == "dead"


def test_a_slow_worker_does_not_overwrite_the_worker_that_took_over(app, yb, pay, shop):
    _endpoint(yb, shop, "http://127.0.0.1:9/unused")
    p = yb.person(balance=5000)
    assert pay.pay(shop, pay.order(shop, p)["pay_order_id"]).status_code == 200
    with app.app_context():
        leased_until = None

        def slow_failure(url, body, headers):
            # While this worker "sends", its lease runs out and another worker delivers the event.
            nonlocal leased_until
            with db.uow() as uow:
                ev = uow.session.scalar(select(WebhookEvent))
                leased_until = ev.next_attempt_at
                ev.state, ev.attempts, ev.delivered_at = "delivered", ev.attempts + 1, utcnow()
                uow.commit()
            return 500

        started = utcnow()
        assert webhooks.deliver_due(db.engine, send=slow_failure)["retry"] == 1
    ev = _events(app)[0]
    assert ev.state == "delivered" and ev.attempts == 1  # the late failure did not turn it back
    # the lease covered the batch's worst case: one send of TIMEOUT plus the margin
    assert leased_until >= started + timedelta(seconds=webhooks.TIMEOUT + webhooks.LEASE_MARGIN - 1)


def test_no_endpoint_no_events(app, yb, pay, shop):
    p = yb.person(balance=5000)
    assert pay.pay(shop, pay.order(shop, p)["pay_order_id"]).status_code == 200
    assert _events(app) == []


def test_webhook_admin_bad_input(yb, shop):
    problem(
        yb.admin("PUT", "/institutions/org_nope/webhook", {"url": "https://x.example/h"}),
        404,
        "INSTITUTION_NOT_FOUND",
    )
    problem(
        yb.admin("PUT", f"/institutions/{shop.org_id}/webhook", {"url": "ftp://x"}), 422, "VALIDATION_FAILED"
    )
    problem(yb.admin("PUT", f"/institutions/{shop.org_id}/webhook", {}), 422, "VALIDATION_FAILED")
    problem(yb.admin("GET", f"/institutions/{shop.org_id}/webhook"), 404, "NOT_FOUND")


# ----------------------------------------------------------------- statements


def test_statement_reconciles_to_the_ledger(app, yb, pay, shop, runner, monkeypatch):
    other = yb.institution(kind="online_pharmacy", name="另一家")
    a, b = yb.person(balance=2500), yb.person(balance=100_000)
    o1 = pay.order(
        shop, a, items=[item(price=1000, quantity=3)], delivery_fee_fen=600
    )  # 2500 acct + 1100 cash
    o2 = pay.order(shop, b, items=[item(price=777)])
    o3 = pay.order(shop, b, items=[item(price=5)])  # never paid
    o4 = pay.order(other, b, items=[item(price=999)])
    for inst, o in ((shop, o1), (shop, o2), (other, o4)):
        assert pay.pay(inst, o["pay_order_id"]).status_code == 200
    assert pay.refund(shop, o1["pay_order_id"], {"amount_fen": 2000, "reason": "x"}).status_code == 201
    assert pay.refund(shop, o2["pay_order_id"]).status_code == 201
    assert o3["status"] == "created"
    today = china_date(datetime.now(UTC)).isoformat()  # statements are by Beijing calendar day
    r = yb.as_institution(shop, "GET", "/statements", query=f"date={today}")
    assert r.status_code == 200, r.get_json()
    st = r.get_json()
    assert st["payments"] == {
        "count": 2,
        "total_fen": 4377,
        "account_fen": 3277,
        "mutual_aid_fen": 0,
        "cash_fen": 1100,
    }
    assert st["refunds"] == {
        "count": 2,
        "total_fen": 2777,
        "account_fen": 2777,
        "mutual_aid_fen": 0,
        "cash_fen": 0,
    }
    assert st["net"] == {"total_fen": 1600, "insurance_fen": 500, "cash_fen": 1100}
    assert st["ledger"] == {"clearing_fen": 1600, "insurance_fen": 500, "cash_fen": 1100}
    assert st["reconciled"] is True
    out = runner.invoke(args=["payments", "statement", "--org-id", shop.org_id, "--date", today])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["ledger"] == st["ledger"]
    # another day is empty; another institution sees only its own
    yesterday = china_date(datetime.now(UTC) - timedelta(days=1)).isoformat()
    empty = yb.as_institution(shop, "GET", "/statements", query=f"date={yesterday}").get_json()
    assert empty["payments"]["count"] == 0 and empty["reconciled"] is True
    theirs = yb.as_institution(other, "GET", "/statements", query=f"date={today}").get_json()
    assert theirs["net"]["total_fen"] == 999 and theirs["reconciled"] is True
    problem(yb.as_institution(shop, "GET", "/statements", query="date=2026-13-01"), 422, "VALIDATION_FAILED")
    assert runner.invoke(args=["payments", "reconcile"]).exit_code == 0


def test_statement_day_is_the_beijing_calendar_day(yb, pay, shop, monkeypatch):
    """A payment at 00:30 Beijing time (16:30 UTC the day before) is on the Beijing date's statement."""
    payer = yb.person(balance=10_000)
    order = pay.order(shop, payer, items=[item(price=1234)])
    refunded = pay.order(shop, payer, items=[item(price=100)])
    late_evening = datetime(2026, 3, 9, 15, 59, 59, tzinfo=UTC)  # 23:59:59 on 9 March in Beijing
    after_midnight = datetime(2026, 3, 9, 16, 30, tzinfo=UTC)  # 00:30 on 10 March in Beijing
    monkeypatch.setattr("payments.settlement.utcnow", lambda: late_evening)
    monkeypatch.setattr("payments.refunds.utcnow", lambda: late_evening)
    assert pay.pay(shop, refunded["pay_order_id"]).status_code == 200
    monkeypatch.setattr("payments.settlement.utcnow", lambda: after_midnight)
    monkeypatch.setattr("payments.refunds.utcnow", lambda: after_midnight)
    assert pay.pay(shop, order["pay_order_id"]).status_code == 200
    assert pay.refund(shop, refunded["pay_order_id"]).status_code == 201

    def day(d: str) -> dict:
        r = yb.as_institution(shop, "GET", "/statements", query=f"date={d}")
        assert r.status_code == 200, r.get_json()
        return r.get_json()

    ninth, tenth = day("2026-03-09"), day("2026-03-10")
    assert tenth["timezone"] == "Asia/Shanghai"
    assert ninth["payments"]["count"] == 1 and ninth["payments"]["total_fen"] == 100
    assert ninth["refunds"]["count"] == 0 and ninth["ledger"]["clearing_fen"] == 100
    assert tenth["payments"]["count"] == 1 and tenth["payments"]["total_fen"] == 1234
    assert tenth["refunds"]["total_fen"] == 100
    assert tenth["net"]["total_fen"] == 1134 and tenth["ledger"]["clearing_fen"] == 1134
    assert ninth["reconciled"] and tenth["reconciled"]
    assert day("2026-03-11")["payments"]["count"] == 0


def test_china_day_bounds():
    from datetime import date

    from yibao.china_time import day_bounds, start_of_day

    assert day_bounds(date(2026, 3, 10)) == (
        datetime(2026, 3, 9, 16, tzinfo=UTC),
        datetime(2026, 3, 10, 16, tzinfo=UTC),
    )
    assert start_of_day(date(2026, 1, 1)) == datetime(2025, 12, 31, 16, tzinfo=UTC)
    assert china_date(datetime(2026, 3, 9, 16, tzinfo=UTC)).isoformat() == "2026-03-10"
    assert china_date(datetime(2026, 3, 9, 15, 59, 59, tzinfo=UTC)).isoformat() == "2026-03-09"
