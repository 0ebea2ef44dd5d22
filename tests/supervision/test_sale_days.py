"""Issue 16: supervision_sale_days (per-day totals kept by triggers, migration s0003) and the covering
window index. The totals always equal supervision_sales' own sums, whatever writes (record_sale,
record_refund, raw SQL updates and deletes); a window's bucketed sum equals the exact sum over its
sales; the migration totals existing sales and goes down and up again."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, inspect, text

from supervision import checks
from supervision import queries as q
from yibao.config import normalize_database_url
from yibao.db import db
from yibao.migrate import downgrade, upgrade

from .support import NOW, read_windows, ref, window_oracle

MIDNIGHT = datetime(2026, 3, 1, tzinfo=UTC)  # NOW's day
_CODES = ("XA01", "XB02")

# The per-day totals, as the triggers must keep them: from supervision_sales itself, in Python.
_SALES = "SELECT person_id, code, institution_id, sold_at, quantity, released FROM supervision_sales"
_DAYS = "SELECT person_id, code, day, institution_id, units FROM supervision_sale_days WHERE units > 0"


def _as_utc(at: datetime | str) -> datetime:
    if isinstance(at, str):  # a raw SQLite read
        at = datetime.fromisoformat(at)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _expected_days(conn) -> dict:  # type: ignore[no-untyped-def]
    out: dict = {}
    for pid, code, inst, at, quantity, released in conn.execute(text(_SALES)):
        if released < quantity:
            day = _as_utc(at).replace(hour=0, minute=0, second=0, microsecond=0)
            key = (pid, code, day, inst)
            out[key] = out.get(key, 0) + quantity - released
    return out


def _days(conn) -> dict:  # type: ignore[no-untyped-def]
    return {(p, c, _as_utc(d), i): u for p, c, d, i, u in conn.execute(text(_DAYS))}


def test_next_midnight_is_strictly_after():
    assert q.next_midnight(MIDNIGHT) == MIDNIGHT + timedelta(days=1)
    assert q.next_midnight(MIDNIGHT - timedelta(microseconds=1)) == MIDNIGHT
    assert q.next_midnight(NOW) == MIDNIGHT + timedelta(days=1)
    # a start given in another offset is the same instant: its UTC day counts
    assert q.next_midnight(datetime.fromisoformat("2026-03-01T07:00:00+08:00")) == MIDNIGHT


# Minutes around NOW's day, with many events exactly on midnights (a day's first instant).
_minutes = st.one_of(
    st.integers(-5 * 24 * 60, 60),
    st.integers(-5, 0).map(lambda d: d * 24 * 60 - 4 * 60),  # MIDNIGHT + d days (NOW is 04:00)
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sales=st.lists(
        st.tuples(st.sampled_from(_CODES), st.integers(0, 2), _minutes, st.integers(1, 5)),
        min_size=1,
        max_size=20,
    ),
    refunds=st.lists(st.tuples(st.integers(0, 19), st.one_of(st.none(), st.integers(1, 6))), max_size=10),
    windows=st.lists(st.tuples(st.sampled_from(_CODES), _minutes), min_size=1, max_size=4),
)
def test_bucketed_sums_equal_the_exact_sums(app, sup, yb, shops, sales, refunds, windows):
    """Random sales recorded as pay records them (some in one order), refunds as refunds give units
    back (per code or the whole order; more than was sold, twice the same order), windows starting
    anywhere (on a midnight, on a sale): the per-day totals equal supervision_sales' sums, and each
    window's bucketed sum equals the exact sum over its sales."""
    iids = [sup.institution_id(s) for s in shops[:3]]
    pid = sup.person_id(yb.person(activate=False))
    starts = sorted({(code, NOW + timedelta(minutes=m)) for code, m in windows})
    # on the edges of the first window: a sale exactly on its start (dropped out: "strictly after") and
    # one exactly on the next midnight (the first of its full days: counted once)
    code0, since0 = starts[0]
    edges = [(code0, 0, since0, 1), (code0, 1, q.next_midnight(since0), 2)]
    orders = []
    with app.app_context(), db.uow() as uow:
        timed = [(c, i, NOW + timedelta(minutes=m), n) for c, i, m, n in sales]
        for n, (code, i, at, quantity) in enumerate(timed + edges):
            order_ref = ref() if n % 3 == 0 or not orders else orders[-1][0]  # some orders: two codes
            checks.record_sale(
                uow,
                person_id=pid,
                institution_id=iids[i],
                lines=[(code, quantity)],
                order_ref=order_ref,
                at=at,
            )
            orders.append((order_ref, code))
        # a retried pay of the first order records nothing more
        first_ref, first_code = orders[0]
        checks.record_sale(
            uow, person_id=pid, institution_id=iids[0], lines=[(first_code, 9)], order_ref=first_ref, at=NOW
        )
        for k, units in refunds:
            order_ref, code = orders[k % len(orders)]
            released = None if units is None else [(code, units)]
            checks.record_refund(uow, order_ref=order_ref, lines_released=released)
        conn = uow.session.connection()
        assert _days(conn) == _expected_days(conn)
        rows = [
            (code, inst, _as_utc(at), quantity, released)
            for _, code, inst, at, quantity, released in conn.execute(
                text(_SALES + " WHERE person_id = :p"), {"p": pid}
            )
        ]
        got = read_windows(uow, pid, starts)
        uow.rollback()
    assert got == {w: window_oracle(rows, *w) for w in starts}


def test_raw_updates_and_deletes_keep_the_totals(app, sup, yb, shops):
    """Whatever writes supervision_sales (hand-typed SQL too), the totals follow: a sale moved to
    another day, person or institution, its quantity changed, a row deleted."""
    iids = [sup.institution_id(s) for s in shops[:2]]
    pids = [sup.person_id(yb.person(activate=False)) for _ in range(2)]
    with app.app_context(), db.uow() as uow:
        for n in range(4):
            checks.record_sale(
                uow,
                person_id=pids[0],
                institution_id=iids[n % 2],
                lines=[("XA01", 2), ("XB02", 1)],
                order_ref=f"R{n}",
                at=NOW - timedelta(days=n),
            )
        s = uow.session
        s.execute(
            text("UPDATE supervision_sales SET sold_at = :at WHERE order_ref = 'R0'"),
            {"at": MIDNIGHT - timedelta(days=9)},
        )
        s.execute(text("UPDATE supervision_sales SET person_id = :p WHERE order_ref = 'R1'"), {"p": pids[1]})
        s.execute(
            text("UPDATE supervision_sales SET institution_id = :i WHERE order_ref = 'R2'"), {"i": iids[1]}
        )
        s.execute(text("UPDATE supervision_sales SET quantity = 5, released = 1 WHERE order_ref = 'R3'"))
        s.execute(text("DELETE FROM supervision_sales WHERE order_ref = 'R3' AND code = 'XB02'"))
        conn = s.connection()
        assert _days(conn) == _expected_days(conn)
        assert sum(_days(conn).values()) == 2 + 1 + 2 + 1 + 2 + 1 + 4
        s.execute(text("DELETE FROM supervision_sales"))
        assert _days(s.connection()) == {}
        uow.rollback()


# --- migration s0003 -------------------------------------------------------------------------------

AT = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
INDEX = "ix_supervision_sales_person_code_sold_at"


def _insert(conn, table: str, **row) -> None:  # type: ignore[no-untyped-def]
    cols = ", ".join(row)
    conn.execute(text(f"INSERT INTO {table} ({cols}) VALUES ({', '.join(':' + c for c in row)})"), row)


def _stored(conn, at: datetime) -> datetime:  # type: ignore[no-untyped-def]
    """A datetime as UTCDateTime stores it (SQLite: naive UTC)."""
    return at.replace(tzinfo=None) if conn.dialect.name == "sqlite" else at


def _write_s0002_sales(conn) -> None:  # type: ignore[no-untyped-def]
    """What s0002 held: two persons' sales over three days, two institutions, one partly refunded,
    one fully refunded."""
    for n in (1, 2):
        _insert(
            conn, "persons", id=n, psn_no=f"psn_mig000000000{n}", id_index=f"idx{n}", id_number_enc="x",
            name_enc="x", name_index="x", id_number_masked="x", name_masked="x", birth_date=date(1980, 1, 1),
            insurance_type="employee", insured_region="532900", status="active", opening_balance_fen=0,
            created_at=AT, updated_at=AT,
        )  # fmt: skip
        _insert(
            conn, "institutions", id=n, org_id=f"org_mig{n}", name="药房", kind="pharmacy", region="532900",
            services='["02121"]', key_id=f"ak_mig{n}", secret_enc="x", status="active", secret_rotated_at=AT,
            created_at=AT,
        )  # fmt: skip
    sales = [  # person, institution, code, sold_at, quantity, released
        (1, 1, "XA01", AT, 3, 0),
        (1, 1, "XA01", AT + timedelta(hours=1), 2, 1),
        (1, 2, "XA01", AT - timedelta(days=1), 4, 4),
        (1, 2, "XA01", AT - timedelta(days=2, hours=1), 1, 0),
        (1, 1, "XB02", AT - timedelta(hours=3), 5, 0),  # the day before (02:00 - 3 h)
        (2, 1, "XA01", AT, 7, 2),
    ]
    for n, (pid, inst, code, at, quantity, released) in enumerate(sales):
        _insert(
            conn, "supervision_sales", person_id=pid, code=code, institution_id=inst, order_ref=f"PO{n}",
            quantity=quantity, released=released, sold_at=_stored(conn, at),
        )  # fmt: skip


def _index_columns(conn) -> tuple[list, str]:  # type: ignore[no-untyped-def]
    (ix,) = [i for i in inspect(conn).get_indexes("supervision_sales") if i["name"] == INDEX]
    definition = ""
    if conn.dialect.name == "postgresql":
        definition = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = :n AND schemaname = current_schema()"),
            {"n": ix["name"]},
        ).scalar_one()
    return ix["column_names"], definition


def test_s0003_totals_existing_sales_and_goes_down_and_up(empty_url: str, is_postgres: bool):
    upgrade(empty_url, "s0002")
    engine = create_engine(normalize_database_url(empty_url))
    try:
        with engine.begin() as conn:
            _write_s0002_sales(conn)
            before = conn.execute(text(_SALES + " ORDER BY order_ref")).all()
            assert _index_columns(conn)[0] == ["person_id", "code", "sold_at"]

        upgrade(empty_url, "heads")
        with engine.begin() as conn:
            assert conn.execute(text(_SALES + " ORDER BY order_ref")).all() == before
            day = AT.replace(hour=0)
            assert (
                _days(conn)
                == _expected_days(conn)
                == {
                    (1, "XA01", day, 1): 3 + 1,
                    (1, "XA01", day - timedelta(days=2), 2): 1,
                    (1, "XB02", day - timedelta(days=1), 1): 5,
                    (2, "XA01", day, 1): 5,
                }
            )
            columns, definition = _index_columns(conn)
            if is_postgres:
                assert columns[:3] == ["person_id", "code", "sold_at"]
                assert "INCLUDE (institution_id, quantity, released)" in definition
            else:
                assert columns == ["person_id", "code", "sold_at", "institution_id", "quantity", "released"]
            # the triggers are in force: a new sale and a refund move the totals
            _insert(
                conn, "supervision_sales", person_id=2, code="XA01", institution_id=1, order_ref="PO9",
                quantity=2, released=0, sold_at=_stored(conn, AT),
            )  # fmt: skip
            conn.execute(text("UPDATE supervision_sales SET released = quantity WHERE order_ref = 'PO0'"))
            assert _days(conn) == _expected_days(conn)
            assert _days(conn)[(2, "XA01", day, 1)] == 7 and (1, "XA01", day, 1) in _days(conn)

        downgrade(empty_url, "s0002")
        with engine.begin() as conn:
            assert "supervision_sale_days" not in inspect(conn).get_table_names()
            assert _index_columns(conn)[0] == ["person_id", "code", "sold_at"]
            # no trigger left behind: a sale writes nothing else
            _insert(
                conn, "supervision_sales", person_id=2, code="XB02", institution_id=1, order_ref="PO10",
                quantity=1, released=0, sold_at=_stored(conn, AT),
            )  # fmt: skip

        upgrade(empty_url, "heads")  # and up again: the sale written meanwhile is totalled too
        with engine.connect() as conn:
            assert _days(conn) == _expected_days(conn)
            assert _days(conn)[(2, "XB02", AT.replace(hour=0), 1)] == 1
    finally:
        engine.dispose()
