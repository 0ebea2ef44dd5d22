"""Cost does not grow with history: the same statements, whatever the person's past, and index plans."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, insert, text

from supervision import checks
from supervision import queries as q
from supervision.models import Sale, Scan
from yibao.db import db

from .support import NOW, StatementCounter, ref, window_oracle


def _history(app, pid: int, iid: int, n: int) -> None:  # type: ignore[no-untyped-def]
    """n earlier sales of the person (older than any window) and n scans, in one bulk insert each."""
    old = NOW - timedelta(days=400)
    with app.app_context(), db.uow() as uow:
        uow.session.execute(
            insert(Sale.__table__),
            [
                {
                    "person_id": pid,
                    "code": "XA01" if i % 2 else f"C{i}",
                    "institution_id": iid,
                    "order_ref": f"H{pid}-{n}-{i}",
                    "quantity": 1,
                    "released": 0,
                    "sold_at": old + timedelta(seconds=i),
                }
                for i in range(n)
            ],
        )
        uow.session.execute(
            insert(Scan.__table__),
            [
                {"person_id": pid, "prefecture": "5301", "scanned_at": old + timedelta(seconds=i)}
                for i in range(n)
            ],
        )
        uow.commit()


def _version(app) -> int:  # type: ignore[no-untyped-def]
    with app.app_context(), db.uow(readonly=True) as uow:
        return uow.session.scalar(q.RULES_VERSION)


def _pay_statements(sup, app, pid, iid, version=None) -> list[str]:  # type: ignore[no-untyped-def]
    """A check_order at pay, its sale, a check_scan; `version` as a hot path passes it (None: read)."""
    engine = app.extensions["yibao.db"]["engine"]
    order = ref()
    with app.app_context(), db.uow() as uow:
        with StatementCounter(engine) as counter:
            checks.check_order(
                uow,
                person_id=pid,
                institution_id=iid,
                lines=[("XA01", 1), ("XB02", 1)],
                stage="pay",
                order_ref=order,
                now=NOW,
                rules_version=version,
            )
            checks.record_sale(
                uow, person_id=pid, institution_id=iid, lines=[("XA01", 1)], order_ref=order, at=NOW
            )
            checks.check_scan(
                uow,
                person_id=pid,
                institution_id=iid,
                institution_region="532901",
                scan_ref=ref("SC"),
                now=NOW,
                rules_version=version,
            )
        uow.rollback()
    return [s for s in counter.statements if not s.startswith(("BEGIN", "COMMIT", "ROLLBACK"))]


def test_statements_do_not_depend_on_history(app, sup, yb, person, shops):
    pid, iid = sup.person_id(person), sup.institution_id(shops[0])
    _pay_statements(sup, app, pid, iid)  # this app's first check reads the rules into its cache
    none = _pay_statements(sup, app, pid, iid)
    assert len(none) == 3  # the rules' version (each check: nobody passed it), the sale: nothing else
    # A hot path passes the version its first statement read: no statement for the rules at all.
    assert len(_pay_statements(sup, app, pid, iid, _version(app))) == 1
    for n in range(3):
        sup.quantity_limit(f"Z{n}")  # rules on other codes cost nothing more
    sup.quantity_limit("XA01", max_quantity=100, window_days=30)
    sup.rule("repeat_purchase", drug_code="XA01", window_days=7, max_institutions=5)
    sup.rule("identity_velocity", window_minutes=60, max_prefectures=3)
    first = _pay_statements(sup, app, pid, iid)
    assert len(first) == 8 and "supervision_rules.id" in first[1]  # the version moved: one reload
    small = _pay_statements(sup, app, pid, iid)
    _history(app, pid, iid, 5000)
    large = _pay_statements(sup, app, pid, iid)
    assert small == large  # the same statements, text for text, after 5000 more sales and scans
    assert len(small) == 7  # version, lock, sales range, sale; version, lock, scans range
    assert len(_pay_statements(sup, app, pid, iid, _version(app))) == 5  # lock, range, sale; lock, range


def _plan(app, stmt, params) -> str:  # type: ignore[no-untyped-def]
    """The database's plan of the statement exactly as the service sends it (SQL and driver values)."""
    with app.app_context(), db.uow() as uow:
        conn = uow.session.connection()
        sent: list = []

        def capture(_c, _cur, statement, parameters, *_):  # type: ignore[no-untyped-def]
            sent.append((statement, parameters))

        event.listen(conn, "before_cursor_execute", capture)
        conn.execute(stmt, params).all()
        event.remove(conn, "before_cursor_execute", capture)
        sql, values = sent[0]
        if conn.dialect.name == "sqlite":
            return "\n".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, values))
        conn.exec_driver_sql("ANALYZE supervision_sales")
        conn.exec_driver_sql("ANALYZE supervision_scans")
        return "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql, values))


@pytest.mark.parametrize(
    ("stmt", "index"),
    [
        ("window_sums", "ix_supervision_sales_person_code_sold_at"),
        ("SCANS_IN_WINDOW", "ix_supervision_scans_person_scanned_at"),
    ],
)
def test_the_range_reads_use_their_index(app, sup, yb, shops, stmt, index):
    iid = sup.institution_id(shops[0])
    pids = [sup.person_id(yb.person(activate=False)) for _ in range(20)]
    for pid in pids:
        _history(app, pid, iid, 500)
    if stmt == "SCANS_IN_WINDOW":
        statement, params = q.SCANS_IN_WINDOW, {"person_id": pids[3], "since": NOW - timedelta(hours=1)}
    else:  # two codes, three windows: each a range into the day totals and one into its first day
        windows = [("XA01", NOW - timedelta(days=30)), ("XA01", NOW - timedelta(days=7)), ("XB02", NOW)]
        dialect = app.extensions["yibao.db"]["engine"].dialect.name
        statement = q.window_statement(dialect, 3).statement
        params = q.window_params(dialect, pids[3], windows)
    plan = _plan(app, statement, params)
    assert index in plan, plan
    assert "Seq Scan" not in plan and "SCAN supervision" not in plan, plan  # no full scan anywhere
    if stmt == "window_sums":  # full days from the per-day totals, the first days index-only
        only = ("COVERING INDEX ix_supervision_sales", "Index Only Scan using ix_supervision_sales")
        assert any(s in plan for s in only), plan
        days = ("supervision_sale_days USING PRIMARY KEY", "pk_supervision_sale_days")
        assert any(s in plan for s in days), plan


def test_postgresql_sums_any_number_of_windows_in_one_unchanging_statement(app, sup, yb, shops):
    """PostgreSQL: the windows are one JSON parameter, so the SQL text is the same for 1 or 40 windows; the
    driver prepares it once per connection and PostgreSQL then runs a generic plan instead of planning it
    anew on every pay (the statement of one LATERAL pair per window was custom-planned every time: 0.49 ms
    of planning for 0.28 ms of execution at 20 rules)."""
    if app.extensions["yibao.db"]["engine"].dialect.name != "postgresql":
        pytest.skip("prepared statements and plan caching are PostgreSQL's")
    assert q.window_statement("postgresql", 1) is q.window_statement("postgresql", 40)
    iid = sup.institution_id(shops[0])
    pid = sup.person_id(yb.person(activate=False))
    _history(app, pid, iid, 200)
    windows = [("XA01", NOW - timedelta(days=d)) for d in range(1, 21)]
    with app.app_context(), db.uow() as uow:
        for _ in range(15):  # psycopg prepares after 5; PostgreSQL weighs 5 custom plans, then generic
            q.window_sums(uow, pid, windows)
        plans = uow.session.execute(
            text(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE statement LIKE '%json_array_elements%supervision_sale_days%'"
            )
        ).all()
        uow.rollback()
    assert len(plans) == 1, plans
    generic, custom = plans[0]
    assert generic >= 5 and custom <= 5, plans


# --- the database's sums are the rules' arithmetic -------------------------------------------------

_CODES = ("XA01", "XB02")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sales=st.lists(
        st.tuples(
            st.sampled_from(_CODES),
            st.integers(0, 2),  # which of three institutions
            st.integers(-40 * 24 * 60, 60),  # minutes from NOW (a little in the future too)
            st.integers(1, 5),
            st.integers(0, 5),
        ),
        max_size=25,
    ),
    windows=st.lists(
        st.tuples(st.sampled_from(_CODES), st.integers(0, 40 * 24 * 60)), min_size=1, max_size=6
    ),
)
def test_sums_per_window_match_the_rules_arithmetic(app, sup, yb, shops, sales, windows):
    """Random histories (refunds included, events exactly on a window's edge included): the statement's
    per-institution sums equal the rolling-window arithmetic of supervision/evaluation.py."""
    iids = [sup.institution_id(s) for s in shops[:3]]
    pid = sup.person_id(yb.person(activate=False))
    rows = [
        (code, iids[i], NOW + timedelta(minutes=m), quantity, min(released, quantity))
        for code, i, m, quantity, released in sales
    ]
    starts = sorted({(code, NOW - timedelta(minutes=m)) for code, m in windows})
    # one sale exactly on the first window's start: it has dropped out ("strictly after")
    rows.append((starts[0][0], iids[0], starts[0][1], 1, 0))
    assert _sums_of(app, pid, rows, starts) == {w: window_oracle(rows, *w) for w in starts}


def _sums_of(app, pid, rows, starts):  # type: ignore[no-untyped-def]
    """window_sums of `starts` over these sales (code, institution, at, quantity, released), rolled back."""
    with app.app_context(), db.uow() as uow:
        uow.session.execute(
            insert(Sale.__table__),
            [
                {
                    "person_id": pid,
                    "code": code,
                    "institution_id": inst,
                    "order_ref": ref(),
                    "quantity": quantity,
                    "released": released,
                    "sold_at": at,
                }
                for code, inst, at, quantity, released in rows
            ],
        )
        got = q.window_sums(uow, pid, starts)
        uow.rollback()
    return got


def test_more_windows_than_one_sqlite_statement_holds(app, sup, yb, shops):
    """A hospital bill of many codes under several rules each: 130 codes x 2 windows = 260 windows,
    more than one SQLite compound statement may hold (500 terms, two a window): still every window's
    exact sum, on both databases."""
    iid = sup.institution_id(shops[0])
    pid = sup.person_id(yb.person(activate=False))
    codes = [f"XZ{i:03d}" for i in range(130)]
    rows = [(code, iid, NOW - timedelta(days=1 + i % 5), 1 + i % 3, 0) for i, code in enumerate(codes)]
    starts = [(code, NOW - timedelta(days=d)) for code in codes for d in (2, 10)]
    assert len(starts) > q.SQLITE_WINDOWS_PER_STATEMENT and 2 * len(starts) > 500
    assert _sums_of(app, pid, rows, starts) == {w: window_oracle(rows, *w) for w in starts}
