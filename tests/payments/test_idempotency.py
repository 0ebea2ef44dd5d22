"""Idempotency keys: replay, reuse with another body, in progress, crashed claims, scope, retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from payments import idempotency
from payments.models import IdempotencyKey, PaymentOrder
from tests.support import problem
from yibao.db import db, utcnow
from yibao.errors import AppError
from yibao.registry import services as registry

from .support import item


def n_orders(app) -> int:
    with app.app_context(), db.uow(readonly=True) as uow:
        return uow.session.scalar(select(func.count(PaymentOrder.id)))


def test_same_key_same_body_replays(app, yb, pay, shop):
    p = yb.person(balance=5000)
    body = pay.order_body(pay.pay_auth(p))
    first = pay.create(shop, body, key="k-1")
    second = pay.create(shop, dict(reversed(list(body.items()))), key="k-1")  # key order does not matter
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert n_orders(app) == 1


def test_same_key_other_body_refused(app, yb, pay, shop):
    p = yb.person(balance=5000)
    auth = pay.pay_auth(p)
    assert pay.create(shop, pay.order_body(auth), key="k-2").status_code == 201
    problem(
        pay.create(shop, pay.order_body(auth, items=[item(price=1)]), key="k-2"),
        422,
        "IDEMPOTENCY_KEY_REUSED",
    )
    assert n_orders(app) == 1


def test_key_is_scoped_to_the_institution(app, yb, pay, shop):
    other = yb.institution(kind="online_pharmacy", name="另一家")
    p = yb.person(balance=5000)
    assert pay.create(shop, pay.order_body(pay.pay_auth(p)), key="shared").status_code == 201
    assert pay.create(other, pay.order_body(pay.pay_auth(p)), key="shared").status_code == 201
    assert n_orders(app) == 2


@pytest.mark.parametrize("key", [None, "", "x" * 256, "bad key", "键"])
def test_key_required_and_well_formed(app, yb, pay, shop, key):
    p = yb.person(balance=5000)
    body = pay.order_body(pay.pay_auth(p))
    headers = {} if key is None else {"Idempotency-Key": key}
    r = yb.as_institution(shop, "POST", "/payment-orders", body, headers=headers)
    problem(r, 400, "IDEMPOTENCY_KEY_REQUIRED")
    o = pay.order(shop, p)
    problem(
        yb.as_institution(shop, "POST", f"/payment-orders/{o['pay_order_id']}/pay", headers=headers),
        400,
        "IDEMPOTENCY_KEY_REQUIRED",
    )
    assert n_orders(app) == 1


def _claim(app, org_id, key, body_hash, lock_seconds):
    with app.app_context():
        with db.uow(readonly=True) as uow:
            inst_id = registry.institution_by_org_id(uow, org_id).id
        with db.uow() as uow:
            return idempotency.begin(
                uow, institution_id=inst_id, key=key, req_hash=body_hash, lock_seconds=lock_seconds
            )


def test_in_progress_key_is_409_then_retryable_after_the_lease(app, yb, pay, shop):
    p = yb.person(balance=5000)
    o = pay.order(shop, p)
    path = f"/api/v1/payment-orders/{o['pay_order_id']}/pay"
    # a first request claimed the key and is still running (or crashed: it never completes)
    _claim(app, shop.org_id, "k-run", idempotency.request_hash("POST", path, b""), lock_seconds=60)
    problem(pay.pay(shop, o["pay_order_id"], key="k-run"), 409, "IDEMPOTENCY_KEY_IN_USE")
    assert pay.balance(p) == 5000
    with app.app_context(), db.uow() as uow:  # the lease runs out
        row = uow.session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == "k-run"))
        row.locked_until = utcnow() - timedelta(seconds=1)
        uow.commit()
    r = pay.pay(shop, o["pay_order_id"], key="k-run")
    assert r.status_code == 200, r.get_json()
    assert pay.balance(p) == 4000


def test_a_taken_over_claim_cannot_complete(app, yb, shop):
    h = "0" * 64
    stale = _claim(app, shop.org_id, "k-take", h, lock_seconds=-1)
    fresh = _claim(app, shop.org_id, "k-take", h, lock_seconds=60)
    assert isinstance(stale, idempotency.Claim) and isinstance(fresh, idempotency.Claim)
    assert stale.token != fresh.token
    with app.app_context(), db.uow() as uow:
        with pytest.raises(AppError) as exc:
            idempotency.complete(uow, stale, 200, "{}")
        assert exc.value.code == "IDEMPOTENCY_KEY_IN_USE"
        idempotency.complete(uow, fresh, 200, "{}")
        uow.commit()


def test_pay_and_refund_replay_have_one_effect(app, yb, pay, shop):
    p = yb.person(balance=5000)
    o = pay.order(shop, p)
    a, b = pay.pay(shop, o["pay_order_id"], key="pay-1"), pay.pay(shop, o["pay_order_id"], key="pay-1")
    assert a.status_code == b.status_code == 200
    assert a.get_json() == b.get_json()
    assert pay.balance(p) == 4000
    body = {"amount_fen": 300, "reason": "退"}
    r1, r2 = (
        pay.refund(shop, o["pay_order_id"], body, key="rf-1"),
        pay.refund(shop, o["pay_order_id"], body, key="rf-1"),
    )
    assert r1.status_code == r2.status_code == 201
    assert r1.get_json()["refund_id"] == r2.get_json()["refund_id"]
    assert pay.balance(p) == 4300
    pay.reconcile()


def test_a_refusal_is_replayed_too(app, yb, pay, shop):
    p = yb.person(balance=5000)
    o = pay.order(shop, p)
    problem(pay.refund(shop, o["pay_order_id"], key="rf-early"), 409, "ORDER_STATE_CONFLICT")
    assert pay.pay(shop, o["pay_order_id"]).status_code == 200
    r = pay.refund(shop, o["pay_order_id"], key="rf-early")
    problem(r, 409, "ORDER_STATE_CONFLICT")
    assert r.headers["Idempotent-Replayed"] == "true"
    assert pay.balance(p) == 4000


def test_cancel_accepts_an_optional_key(app, yb, pay, shop):
    p = yb.person(balance=5000)
    o = pay.order(shop, p)
    path = f"/payment-orders/{o['pay_order_id']}/cancel"
    a = yb.as_institution(shop, "POST", path, headers={"Idempotency-Key": "c-1"})
    b = yb.as_institution(shop, "POST", path, headers={"Idempotency-Key": "c-1"})
    assert a.status_code == b.status_code == 200
    assert b.headers["Idempotent-Replayed"] == "true"


def test_keys_kept_24h_then_purged(app, yb, pay, shop, runner):
    p = yb.person(balance=5000)
    assert pay.create(shop, pay.order_body(pay.pay_auth(p)), key="old").status_code == 201
    with app.app_context(), db.uow() as uow:
        row = uow.session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == "old"))
        assert row.expires_at - row.created_at >= timedelta(hours=24)
        row.expires_at = utcnow() - timedelta(seconds=1)
        uow.commit()
    out = runner.invoke(args=["payments", "purge-idempotency-keys"])
    assert out.exit_code == 0 and '"deleted": 1' in out.output


def test_complete_and_release_name_the_claim_s_month(app, yb, shop, is_postgres):
    """A claim carries its row's month (period_start, the partition key): complete() changes that row
    only, and a claim naming another month changes nothing. On PostgreSQL the plan of the completion
    reads one partition, not every month's index."""
    h = "0" * 64
    claim = _claim(app, shop.org_id, "k-month", h, lock_seconds=60)
    assert isinstance(claim, idempotency.Claim)
    wrong = idempotency.Claim(claim.id, claim.token, claim.period_start - timedelta(days=40))
    with app.app_context(), db.uow() as uow:
        with pytest.raises(AppError) as exc:
            idempotency.complete(uow, wrong, 200, "{}")
        assert exc.value.code == "IDEMPOTENCY_KEY_IN_USE"
        idempotency.release(uow, wrong)  # another month: nothing to forget
        idempotency.complete(uow, claim, 200, "{}")
        uow.commit()
    with app.app_context(), db.uow(readonly=True) as uow:
        row = uow.session.scalar(select(IdempotencyKey).where(IdempotencyKey.key == "k-month"))
        assert row.state == "done"
        if is_postgres:
            compiled = idempotency._COMPLETE._compile(uow.core().dialect)
            values = {"claim_id": claim.id, "claim_month": claim.period_start, "token": claim.token}
            values.update(status=200, body="{}", **dict(compiled.constants))
            from psycopg import RawCursor  # the statement as Prepared runs it: $n placeholders

            with RawCursor(uow.core().connection.driver_connection) as raw:
                raw.execute("EXPLAIN " + compiled.sql, [values[n] for n in compiled.positional])
                plan = "\n".join(r[0] for r in raw.fetchall())
            scans = [line for line in plan.splitlines() if "Scan" in line]
            assert len(scans) == 1 and "idempotency_keys_p" in scans[0], plan  # one month's partition
