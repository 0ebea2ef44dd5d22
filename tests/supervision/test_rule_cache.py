"""The per-worker cache of enabled rules (supervision/rule_cache.py) is never stale: a rule changed
through the admin API, or by hand-typed SQL, applies from the very next request, in every worker (two
apps on one database are two workers); the database's triggers keep the version."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, insert, inspect, text, update
from sqlalchemy.exc import DBAPIError

from supervision import checks, rule_cache
from supervision import queries as q
from supervision.models import Rule
from tests.payments.support import Pay, item
from tests.support import Yb, problem
from tests.voucher.offline_support import independent_code, new_credential
from tests.voucher.support import VoucherDriver
from yibao import create_app
from yibao.config import normalize_database_url
from yibao.db import db, utcnow
from yibao.migrate import downgrade, upgrade

from .support import NOW, StatementCounter, quantity_rule, ref, set_enabled, velocity_rule


class Worker:
    """One app (one worker's caches) and its drivers."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.yb = Yb(app.test_client())
        self.pay = Pay(self.yb)
        self.vd = VoucherDriver(self.yb, app)

    @property
    def loads(self) -> int:
        return self.app.extensions[rule_cache.EXTENSION].loads


@pytest.fixture
def workers(app, app_config):  # type: ignore[no-untyped-def]
    other = create_app(app_config)
    yield Worker(app), Worker(other)
    other.extensions["yibao.db"]["engine"].dispose()


def version(app) -> int:  # type: ignore[no-untyped-def]
    with app.app_context(), db.uow(readonly=True) as uow:
        return uow.session.scalar(q.RULES_VERSION)


def raw(app, sql: str, **params: Any) -> None:  # type: ignore[no-untyped-def]
    """Hand-typed SQL, behind the application's back."""
    with app.app_context(), db.uow() as uow:
        uow.session.execute(text(sql), params)
        uow.commit()


# --- the version row and its triggers --------------------------------------------------------------


def test_the_version_row_is_there_after_the_migrations_and_cannot_be_deleted(app):
    with app.app_context(), db.uow(readonly=True) as uow:
        rows = uow.session.execute(text("SELECT id, version FROM supervision_rules_state")).all()
    assert len(rows) == 1 and rows[0].id == 1 and rows[0].version is not None
    with app.app_context(), db.uow() as uow, pytest.raises(DBAPIError):
        uow.session.execute(text("DELETE FROM supervision_rules_state"))
    with app.app_context(), db.uow() as uow, pytest.raises(DBAPIError):
        uow.session.execute(text("INSERT INTO supervision_rules_state (id, version) VALUES (2, 1)"))
    assert version(app) == rows[0].version


def test_a_fresh_database_gets_the_row_and_down_and_up_again(empty_url: str):
    def state(url: str) -> list:
        engine = create_engine(normalize_database_url(url))
        try:
            if "supervision_rules_state" not in inspect(engine).get_table_names():
                return []
            with engine.connect() as conn:
                return conn.execute(text("SELECT id FROM supervision_rules_state")).scalars().all()
        finally:
            engine.dispose()

    upgrade(empty_url, "heads")
    assert state(empty_url) == [1]
    downgrade(empty_url, "s0001")
    assert state(empty_url) == []
    upgrade(empty_url, "heads")
    assert state(empty_url) == [1]


def test_every_kind_of_change_moves_the_version_and_a_read_does_not(app, sup):
    seen = [version(app)]
    rid = sup.quantity_limit("XA01")  # the admin API
    seen.append(version(app))
    sup.set_enabled(rid, False)
    seen.append(version(app))
    raw(app, "UPDATE supervision_rules SET action = 'warn' WHERE rule_id = :r", r=rid)
    seen.append(version(app))
    with app.app_context(), db.uow(readonly=True) as uow:
        uow.session.execute(text("SELECT * FROM supervision_rules")).all()
    assert version(app) == seen[-1]
    assert len(set(seen)) == len(seen), seen  # each change its own version


def test_a_rolled_back_change_leaves_the_version(app):
    before = version(app)
    with app.app_context(), db.uow() as uow:
        uow.session.execute(text("UPDATE supervision_rules SET enabled = enabled"))
        uow.rollback()
    assert version(app) == before


# --- the next request sees every change, in every worker -------------------------------------------


def test_admin_changes_apply_to_the_next_pay_in_both_workers(workers, yb):
    one, two = workers
    shop = yb.institution(kind="online_pharmacy", name="线上药房")
    p = yb.person(balance=100_000)
    orders = [one.pay.order(shop, p, items=[item(quantity=2)]) for _ in range(6)]
    # both workers have read the rules (none) into their caches
    assert one.pay.pay(shop, orders[0]["pay_order_id"]).status_code == 200
    assert two.pay.pay(shop, orders[1]["pay_order_id"]).status_code == 200
    rid = quantity_rule(one.yb, max_quantity=4)  # created through worker one
    problem(two.pay.pay(shop, orders[2]["pay_order_id"]), 422, "SUPERVISION_BLOCKED")
    problem(one.pay.pay(shop, orders[2]["pay_order_id"]), 422, "SUPERVISION_BLOCKED")
    set_enabled(two.yb, rid, False)  # disabled through worker two
    assert one.pay.pay(shop, orders[2]["pay_order_id"]).status_code == 200
    set_enabled(one.yb, rid, True)
    problem(two.pay.pay(shop, orders[3]["pay_order_id"]), 422, "SUPERVISION_BLOCKED")
    # hand-typed SQL: the rule becomes a warning, then allows more; the triggers tell both workers
    raw(one.app, "UPDATE supervision_rules SET action = 'warn' WHERE rule_id = :r", r=rid)
    paid = two.pay.pay(shop, orders[3]["pay_order_id"])
    assert paid.status_code == 200 and [w["rule_id"] for w in paid.get_json()["warnings"]] == [rid]
    with two.app.app_context(), db.uow() as uow:  # a Core UPDATE: no ORM, no application code
        uow.session.execute(
            update(Rule.__table__)
            .where(Rule.__table__.c.rule_id == rid)
            .values(action="block", params={"drug_code": "XA01", "max_quantity": 100, "window_days": 30})
        )
        uow.commit()
    paid = one.pay.pay(shop, orders[4]["pay_order_id"])
    assert paid.status_code == 200 and paid.get_json()["warnings"] == []
    raw(one.app, "DELETE FROM supervision_rule_changes")
    raw(one.app, "DELETE FROM supervision_alerts")
    raw(one.app, "DELETE FROM supervision_rules")
    assert two.pay.pay(shop, orders[5]["pay_order_id"]).status_code == 200


def test_a_rule_between_create_and_pay_blocks_the_other_worker_s_pay(workers, yb):
    one, two = workers
    shop = yb.institution(kind="online_pharmacy", name="线上药房")
    p = yb.person(balance=100_000)
    o = two.pay.order(shop, p, items=[item(quantity=3)])  # worker two's cache: no rule
    quantity_rule(one.yb, max_quantity=2)
    problem(two.pay.pay(shop, o["pay_order_id"]), 422, "SUPERVISION_BLOCKED")


def test_a_raw_sql_insert_of_a_rule_blocks_the_next_pay(workers, yb):
    one, two = workers
    shop = yb.institution(kind="online_pharmacy", name="线上药房")
    p = yb.person(balance=100_000)
    o = one.pay.order(shop, p, items=[item(quantity=3)])
    with one.app.app_context(), db.uow() as uow:
        uow.session.execute(
            insert(Rule.__table__),
            {
                "rule_id": "SRRAW1",
                "kind": "quantity_limit",
                "params": {"drug_code": "XA01", "max_quantity": 2, "window_days": 30},
                "drug_code": "XA01",
                "action": "block",
                "enabled": True,
                "created_at": utcnow(),
                "updated_at": utcnow(),
            },
        )
        uow.commit()
    body = problem(two.pay.pay(shop, o["pay_order_id"]), 422, "SUPERVISION_BLOCKED")
    assert [v["rule_id"] for v in body["violations"]] == ["SRRAW1"]


def test_identity_rules_apply_to_the_next_scan_in_both_workers(workers, yb):
    one, two = workers
    p = yb.person(region="530000")  # insured province-wide: both prefectures are covered
    dali, kunming = yb.institution(region="532901"), yb.institution(region="530102")
    assert one.vd.scan(dali, one.vd.issue(p)["qr_content"]).status_code == 200
    assert two.vd.scan(kunming, two.vd.issue(p)["qr_content"]).status_code == 200  # no rule yet
    rid = velocity_rule(one.yb)
    problem(two.vd.scan(dali, two.vd.issue(p)["qr_content"]), 422, "SUPERVISION_BLOCKED")
    raw(two.app, "UPDATE supervision_rules SET action = 'warn' WHERE rule_id = :r", r=rid)
    warned = one.vd.scan(dali, one.vd.issue(p)["qr_content"])
    assert warned.status_code == 200 and [w["rule_id"] for w in warned.get_json()["warnings"]] == [rid]
    set_enabled(two.yb, rid, False)
    accepted = one.vd.scan(kunming, one.vd.issue(p)["qr_content"])
    assert accepted.status_code == 200 and accepted.get_json()["warnings"] == []


def test_identity_rules_apply_to_the_next_offline_scan(workers, yb):
    one, two = workers
    p = yb.person(region="530000")
    dali, kunming = yb.institution(region="532901"), yb.institution(region="530102")
    cred = new_credential(yb, p)

    def yo1(seq: int) -> str:
        return independent_code(cred["credential_id"], cred["secret"], time.time(), seq)

    assert two.vd.scan(dali, yo1(0)).status_code == 200  # worker two has read the rules (none)
    velocity_rule(one.yb)
    problem(two.vd.scan(kunming, yo1(1)), 422, "SUPERVISION_BLOCKED")


# --- what it costs ---------------------------------------------------------------------------------


def _statements(app, fn) -> list[str]:  # type: ignore[no-untyped-def]
    with app.app_context():
        engine = db.engine
    with StatementCounter(engine) as counter:
        fn()
    return counter.statements


def test_a_verification_reads_the_version_with_the_person_and_no_rules(app, yb):
    vd = VoucherDriver(yb, app)
    p = yb.person(region="530000")
    dali = yb.institution(region="532901")
    velocity_rule(yb, action="warn")
    assert vd.scan(dali, vd.issue(p)["qr_content"]).status_code == 200  # the worker's cache is filled
    code = vd.issue(p)["qr_content"]
    loads = app.extensions[rule_cache.EXTENSION].loads
    seen = _statements(app, lambda: vd.scan(dali, code))
    first = next(s for s in seen if "voucher_subjects" in s)
    assert "supervision_rules_state" in first  # the version rides on the person's read
    assert not any(re.search(r"FROM supervision_rules\b", s) for s in seen), seen
    assert sum("supervision_rules_state" in s for s in seen) == 1
    assert app.extensions[rule_cache.EXTENSION].loads == loads


def test_a_change_costs_each_worker_one_reload(workers, yb):
    one, two = workers
    shop = yb.institution(kind="online_pharmacy", name="线上药房")
    p = yb.person(balance=100_000)
    orders = [one.pay.order(shop, p, items=[item(quantity=1)]) for _ in range(4)]
    quantity_rule(one.yb, max_quantity=100)
    before = (one.loads, two.loads)
    for w, o in zip((one, two, one, two), orders, strict=True):
        assert w.pay.pay(shop, o["pay_order_id"]).status_code == 200
    assert (one.loads, two.loads) == (before[0] + 1, before[1] + 1)


def test_more_rules_than_the_cache_holds_are_read_per_check(app, sup, yb, person, shops, monkeypatch):
    monkeypatch.setattr(rule_cache, "MAX_RULES", 2)
    pid, iid = sup.person_id(person), sup.institution_id(shops[0])
    for code in ("Z1", "Z2"):
        sup.quantity_limit(code)
    sup.quantity_limit("XA01", max_quantity=1)
    with pytest.raises(checks.SupervisionBlocked):
        sup.check(pid, iid, [("XA01", 2)])
    seen = _statements(app, lambda: sup.check(pid, iid, [("XB02", 1)]))
    assert any("FROM supervision_rules" in s and "drug_code IN" in s for s in seen), seen


def test_without_an_app_context_nothing_is_cached_and_nothing_skipped(app, sup, person, shops):
    pid, iid = sup.person_id(person), sup.institution_id(shops[0])
    sup.quantity_limit("XA01", max_quantity=1)
    sessions = app.extensions["yibao.db"]["write"]
    with sessions() as session:
        uow = _Bare(session)
        with pytest.raises(checks.SupervisionBlocked):
            checks.check_order(
                uow, person_id=pid, institution_id=iid, lines=[("XA01", 2)], stage="create",
                order_ref=ref(), now=NOW,
            )  # fmt: skip
        session.rollback()


class _Bare:
    """A unit of work over a plain session, outside any app context."""

    def __init__(self, session: Any) -> None:
        self.session = session

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def core(self) -> Any:
        return self.session.connection()


# --- the cached lookup is the old query ------------------------------------------------------------

_CODES = ("XA01", "XB02", "XC03", "XD04")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rules=st.lists(
        st.tuples(
            st.sampled_from(("quantity_limit", "repeat_purchase", "identity_velocity")),
            st.sampled_from(_CODES),
            st.booleans(),  # enabled
            st.sampled_from(("block", "warn")),
        ),
        max_size=20,
    ),
    orders=st.lists(st.lists(st.sampled_from((*_CODES, "NONE")), max_size=4, unique=True), max_size=6),
)
def test_the_cached_lookup_returns_the_rules_the_query_returns(app, rules, orders):
    """Random rule sets (kinds, codes, enabled or not) and orders: the snapshot's rules of an order's
    codes and its scan rules are exactly the rows of queries.ORDER_RULES / SCAN_RULES."""
    rows = []
    for i, (kind, code, enabled, action) in enumerate(rules):
        scan = kind == "identity_velocity"
        params = (
            {"window_minutes": 60, "max_prefectures": 2}
            if scan
            else {"drug_code": code, "max_quantity": i + 1, "window_days": 30}
        )
        rows.append(
            {
                "rule_id": f"SRH{i:04d}",
                "kind": kind,
                "params": params,
                "drug_code": None if scan else code,
                "action": action,
                "enabled": enabled,
                "created_at": NOW,
                "updated_at": NOW,
            }
        )
    with app.app_context(), db.uow() as uow:
        if rows:
            uow.session.execute(insert(Rule.__table__), rows)
        snap = rule_cache._load(uow)  # noqa: SLF001  (the statement the cache fills itself with)
        assert snap is not None and snap.complete
        for codes in orders:
            query = rule_cache.rule_rows(uow.session.execute(q.ORDER_RULES, {"codes": codes}))
            assert snap.order_rules(codes) == sorted(query, key=lambda r: r.pk)
        scan = rule_cache.rule_rows(uow.session.execute(q.SCAN_RULES))
        assert list(snap.scan) == sorted(scan, key=lambda r: r.pk)
        assert snap.size == sum(r["enabled"] for r in rows)
        uow.rollback()


def test_a_change_that_bypassed_the_triggers_is_seen_within_the_maximum_age(app, sup, yb, shops, monkeypatch):
    """session_replication_role = replica (a logical replica, a restore) fires no trigger: the version
    stays, and the cached rules are used only until MAX_AGE_SECONDS have passed; then reloaded."""
    import time as _time

    from supervision import rule_cache

    if app.extensions["yibao.db"]["engine"].dialect.name != "postgresql":
        pytest.skip("session_replication_role is PostgreSQL's")
    iid = sup.institution_id(shops[0])
    pid = sup.person_id(yb.person(activate=False))
    rule_id = sup.quantity_limit("XA01", max_quantity=100)
    lines = [("XA01", 2)]

    def check() -> None:
        with app.app_context(), db.uow() as uow:
            checks.check_order(
                uow, person_id=pid, institution_id=iid, lines=lines, stage="create", order_ref=ref(), now=NOW
            )

    check()  # cached: the rule allows 100
    with app.app_context(), db.uow() as uow:
        uow.session.execute(text("SET LOCAL session_replication_role = replica"))
        uow.session.execute(
            text("UPDATE supervision_rules SET params = CAST(:p AS json) WHERE rule_id = :r"),
            {"p": json.dumps({"drug_code": "XA01", "max_quantity": 1, "window_days": 30}), "r": rule_id},
        )
        uow.commit()
    check()  # the version did not move: still the cached rule
    later = _time.monotonic() + rule_cache.MAX_AGE_SECONDS + 1
    monkeypatch.setattr(rule_cache.time, "monotonic", lambda: later)
    with pytest.raises(checks.SupervisionBlocked):
        check()
