"""The window sums' parameters as each database reads them: SQLite's text stamps compare with the stored
column exactly as SQLAlchemy's typed value would, and PostgreSQL reads the JSON windows' starts as the
same instants (microseconds and offsets included)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.dialects import sqlite

from supervision import queries as q
from yibao.db import UTCDateTime, db

# Any offset Python allows (to ±23:59:59.999999, seconds and microseconds included): PostgreSQL refuses
# offsets beyond ±15:59:59 or with microseconds, so the starts must reach it in UTC.
offsets = st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59, seconds=-59, microseconds=-999999),
    max_value=timedelta(hours=23, minutes=59, seconds=59, microseconds=999999),
).map(timezone)
aware = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 29), timezones=st.one_of(st.just(UTC), offsets)
)


@given(aware)
def test_sqlite_stamp_is_what_sqlalchemy_stores(at: datetime) -> None:
    dialect = sqlite.dialect()
    stored = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert q.sqlite_stamp(at) == stored(at)
    assert q.sqlite_stamp(q.next_midnight(at)) == stored(q.next_midnight(at))
    params = q.window_params("sqlite", 7, [("XA01", at)])
    assert params == {
        "person_id": 7,
        "code_0": "XA01",
        "since_0": stored(at),
        "day_0": stored(q.next_midnight(at)),
    }


class _NoOffset(tzinfo):
    """A tzinfo that does not know its offset: the datetime is naive for every purpose."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None


@pytest.mark.parametrize("naive", [datetime(2026, 12, 1), datetime(2026, 12, 1, tzinfo=_NoOffset())])
def test_naive_starts_are_refused(naive: datetime) -> None:
    with pytest.raises(ValueError, match="naive"):
        q.sqlite_stamp(naive)
    with pytest.raises(ValueError, match="naive"):
        q.postgresql_windows([("XA01", naive)])


def test_postgresql_windows_are_code_start_pairs_in_order() -> None:
    at = datetime(2026, 12, 1, 8, 30, 0, 5, tzinfo=timezone(timedelta(hours=8)))
    pairs = json.loads(q.postgresql_windows([("XA01", at), ('X"\\中', at)]))
    assert pairs == [
        ["XA01", "2026-12-01T00:30:00.000005+00:00"],
        ['X"\\中', "2026-12-01T00:30:00.000005+00:00"],
    ]


@pytest.fixture
def pg_app(app):  # type: ignore[no-untyped-def]
    """The app on PostgreSQL, else skipped (before hypothesis runs any example)."""
    if app.extensions["yibao.db"]["engine"].dialect.name != "postgresql":
        pytest.skip("the JSON windows are PostgreSQL's")
    return app


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(starts=[datetime(2026, 3, 8, 12, tzinfo=UTC)])  # its next UTC day holds New York's DST change
@example(starts=[datetime(2026, 12, 1, 23, tzinfo=timezone(timedelta(hours=16)))])  # PostgreSQL: out of range
@example(starts=[datetime(2026, 12, 1, tzinfo=timezone(timedelta(hours=5, seconds=1, microseconds=5)))])
@given(starts=st.lists(aware, min_size=1, max_size=5))
def test_postgresql_reads_the_same_instants_and_midnights(pg_app, starts: list[datetime]) -> None:  # type: ignore[no-untyped-def]
    """The statement's own windows CTE, run on PostgreSQL: each start is the same instant and its day
    boundary is next_midnight(), whatever the session's TimeZone (years 1 to 9999 included)."""
    app = pg_app
    w = q.postgresql_windows_cte()
    statement = select(w.c.since, w.c.day).order_by(w.c.window)
    windows = [("XA01", s) for s in starts]
    with app.app_context(), db.uow(readonly=True) as uow:
        uow.session.execute(text("SET LOCAL TimeZone = 'America/New_York'"))  # a zone with DST
        got = uow.session.execute(statement, {"windows": q.postgresql_windows(windows)}).all()
    assert [(a, b) for a, b in got] == [(s, q.next_midnight(s)) for s in starts]
