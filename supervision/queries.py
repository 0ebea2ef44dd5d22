"""Prebuilt Core statements of the hot path (no ORM loads) and the dialect-specific upserts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    DateTime,
    Insert,
    Integer,
    String,
    bindparam,
    case,
    cast,
    column,
    func,
    literal,
    literal_column,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from yibao.db import UnitOfWork
from yibao.prepared import Prepared, PreparedRows

from .models import ORDER_KINDS, SCAN_KINDS, Alert, PersonLock, Rule, RulesState, Sale, SaleDay, Scan

# Core tables (not the mapped classes): these statements never go through the ORM.
rules, sales, scans = Rule.__table__.c, Sale.__table__.c, Scan.__table__.c
state = RulesState.__table__.c
days = SaleDay.__table__.c

_RULE_COLUMNS = (rules.id, rules.rule_id, rules.kind, rules.action, rules.params, rules.drug_code)

# The enabled order rules on an order's codes (index enabled, kind, drug_code).
ORDER_RULES = select(*_RULE_COLUMNS).where(
    rules.enabled == true(),
    rules.kind.in_(ORDER_KINDS),
    rules.drug_code.in_(bindparam("codes", expanding=True)),
)
SCAN_RULES = select(*_RULE_COLUMNS).where(rules.enabled == true(), rules.kind.in_(SCAN_KINDS))

# The enabled rules' version (migration s0002's one row, bumped by triggers): a statement of its own,
# or a scalar subquery the hot paths add to their first statement (checks.rules_version_column).
RULES_VERSION = select(state.version).where(state.id == 1)

# The version and every enabled rule in ONE statement (one snapshot on both databases): a cache entry
# never pairs rules with another version. One row per rule (the version repeated), or one row with
# NULL rule columns when none is enabled; no row when the version row is missing. At most n rows.
RULES_WITH_VERSION = (
    select(state.version, *_RULE_COLUMNS)
    .select_from(RulesState.__table__.outerjoin(Rule.__table__, rules.enabled == true()))
    .where(state.id == 1)
    .order_by(rules.id)
    .limit(bindparam("n", type_=Integer))
)


# The person's still-counted units per institution in every rule window, summed by the database. A
# window is its full UTC days (from the first midnight strictly after its start), read from
# supervision_sale_days (per-day totals kept by triggers, migration s0003), plus its first, partial day
# (strictly after the start, before that midnight), read from supervision_sales through the covering
# index on (person_id, code, sold_at): what a window reads is at most one row per day and institution
# plus one day's sales, however many sales it holds. An institution's two rows of a window add up
# (window_sums).
#
# PostgreSQL: ONE statement for any number of windows. The windows are one JSON parameter (postgresql_
# windows), unnested WITH ORDINALITY; each window's midnight is computed in SQL; each window is a LATERAL
# subquery into each table (one index range each: a plain join's estimate of ranges bounded by another
# table's columns made the planner scan the person's every sale). Its text never changes, so the
# driver prepares it once per connection (and integer size of person_id) and PostgreSQL settles on one
# generic plan: the earlier
# statement of one LATERAL pair per window was planned anew on every execution (0.49 ms of planning for
# 0.28 ms of execution at 20 windows, 2026-12-01) and bound three typed parameters per window in Python.
# SQLite, which has no LATERAL and whose planner put the sales in the outer loop of a join to the
# windows, has each window as its own two branches (_window_branches), bounded by the window's own
# bound values.
Windows = dict[tuple[str, datetime], dict[int, int]]


def _utc_midnight_after(at: Any) -> Any:
    """SQL: the first 00:00 UTC strictly after timestamptz `at` (next_midnight), whatever the session's
    TimeZone: the day is added to the UTC wall time, then made a timestamptz again."""
    utc = literal_column("'UTC'")
    utc_wall = func.timezone(utc, at)
    return func.timezone(
        utc, func.date_trunc(literal_column("'day'"), utc_wall) + literal_column("INTERVAL '1 day'")
    )


def postgresql_windows_cte() -> Any:
    """The CTE `windows` (window, code, since, day) of bindparam `windows`, a JSON array of [code,
    start] pairs (start in ISO 8601, UTC; postgresql_windows()): window is the pair's
    position, from 1; day the first 00:00 UTC strictly after since."""
    listed = (
        func.json_array_elements(cast(bindparam("windows", type_=String), postgresql.JSON))
        .table_valued(column("pair", postgresql.JSON), with_ordinality="window")
        .render_derived(name="listed")
    )
    code = listed.c.pair.op("->>")(literal_column("0"))
    since = cast(listed.c.pair.op("->>")(literal_column("1")), DateTime(timezone=True))
    return select(
        listed.c.window, code.label("code"), since.label("since"), _utc_midnight_after(since).label("day")
    ).cte("windows")


def _postgresql_windows() -> Any:
    """Rows (window, institution_id, units) for the windows of postgresql_windows_cte()."""
    w = postgresql_windows_cte()
    full_days = (
        select(days.institution_id, func.sum(days.units).label("units"))
        .where(
            days.person_id == bindparam("person_id", type_=Integer),
            days.code == w.c.code,
            days.day >= w.c.day,
            days.units > 0,
        )
        .group_by(days.institution_id)
        .lateral("full_days")
    )
    first_day = (
        select(sales.institution_id, func.sum(sales.quantity - sales.released).label("units"))
        .where(
            sales.person_id == bindparam("person_id", type_=Integer),
            sales.code == w.c.code,
            sales.sold_at > w.c.since,
            sales.sold_at < w.c.day,
            sales.released < sales.quantity,
        )
        .group_by(sales.institution_id)
        .lateral("first_day")
    )
    return union_all(
        *(
            select(w.c.window, per.c.institution_id, per.c.units).select_from(w.join(per, true()))
            for per in (full_days, first_day)
        )
    )


def _window_branches(n: int) -> Any:
    """SQLite: two branches per window, each bounded by the window's own bound values (code_i, day_i,
    since_i), so each is one index range: SQLite's planner, given the windows as a joined table, put the
    person's every sale in the outer loop (273 ms a pay at 100 000 earlier orders in the 2026-12-01 17:19
    bench) and offers no LATERAL to keep it from doing so. Window i is numbered i + 1, as PostgreSQL's."""
    branches = []
    for i in range(n):
        code = bindparam(f"code_{i}", type_=String)
        day = bindparam(f"day_{i}", type_=String)  # sqlite_stamp() text: compared as stored
        since = bindparam(f"since_{i}", type_=String)
        branches.append(
            select(literal(i + 1).label("window"), days.institution_id, func.sum(days.units).label("units"))
            .where(
                days.person_id == bindparam("person_id"),
                days.code == code,
                days.day >= day,
                days.units > 0,
            )
            .group_by(days.institution_id)
        )
        branches.append(
            select(
                literal(i + 1).label("window"),
                sales.institution_id,
                func.sum(sales.quantity - sales.released).label("units"),
            )
            .where(
                sales.person_id == bindparam("person_id"),
                sales.code == code,
                sales.sold_at > since,
                sales.sold_at < day,
                sales.released < sales.quantity,
            )
            .group_by(sales.institution_id)
        )
    return union_all(*branches)


def next_midnight(at: datetime) -> datetime:
    """The first 00:00 UTC strictly after `at`: where a window starting at `at` has its full days."""
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, at.day, tzinfo=UTC) + timedelta(days=1)


_POSTGRESQL_WINDOWS = Prepared(_postgresql_windows(), ("person_id", "windows"))
_sqlite_windows: dict[int, Prepared] = {}


def window_statement(dialect: str, n: int) -> Prepared:
    """The window sums of n windows (PostgreSQL: one statement for any n); bind window_params()."""
    if dialect == "postgresql":
        return _POSTGRESQL_WINDOWS
    if n not in _sqlite_windows:
        names = [f"{p}_{i}" for i in range(n) for p in ("code", "since", "day")]
        _sqlite_windows[n] = Prepared(_window_branches(n), ("person_id", *names))
    return _sqlite_windows[n]


def postgresql_windows(windows: Sequence[tuple[str, datetime]]) -> str:
    """The windows as PostgreSQL's statement takes them: one JSON text, [[code, start], ...] with each
    start in ISO 8601 in UTC (`+00:00`, microseconds kept: PostgreSQL reads the same instant). A JSON
    text, not two array parameters: psycopg dumps a list element by element in Python (a regular
    expression each), which cost more than the statement's execution at 20 windows."""
    for _, since in windows:
        if since.utcoffset() is None:
            raise ValueError("naive datetime")
    # in UTC: PostgreSQL refuses some offsets Python allows (beyond ±15:59:59, or with microseconds)
    pairs = [[code, since.astimezone(UTC).isoformat()] for code, since in windows]
    return json.dumps(pairs, separators=(",", ":"))


def window_params(dialect: str, person_id: int, windows: Sequence[tuple[str, datetime]]) -> dict[str, Any]:
    """window_statement(dialect, len(windows))'s parameters: window i + 1 counts windows[i][0] strictly
    after windows[i][1] (an aware datetime)."""
    if dialect == "postgresql":
        return {"person_id": person_id, "windows": postgresql_windows(windows)}
    params: dict[str, Any] = {"person_id": person_id}
    for i, (code, since) in enumerate(windows):
        params[f"code_{i}"] = code
        params[f"since_{i}"], params[f"day_{i}"] = sqlite_stamp(since), sqlite_stamp(next_midnight(since))
    return params


def sqlite_stamp(at: datetime) -> str:
    """An aware datetime as SQLite stores a UTCDateTime (naive UTC, `YYYY-MM-DD HH:MM:SS.ffffff`), so
    that a text parameter compares with the column exactly as the typed one would: the window sums bind
    two per window, and SQLAlchemy's two bind processors per datetime cost more than the statement."""
    if at.utcoffset() is None:
        raise ValueError("naive datetime")
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


# SQLite refuses a compound SELECT of more than 500 terms: its per-window statement (two branches a
# window) is run for at most this many windows at a time (an order of 200 lines with two rule windows
# each has 400). PostgreSQL's windows are rows of one statement: no limit.
SQLITE_WINDOWS_PER_STATEMENT = 200


def window_sums(uow: UnitOfWork, person_id: int, windows: Iterable[tuple[str, datetime]]) -> Windows:
    """{(code, since): {institution_id: units}} for every window: the units of `code` the person was
    sold strictly after `since` and not given back, per institution that sold any (one statement; on
    SQLite one per SQLITE_WINDOWS_PER_STATEMENT windows, in the same transaction)."""
    ordered = sorted(set(windows))
    out: Windows = {w: {} for w in ordered}
    dialect = uow.dialect
    step = SQLITE_WINDOWS_PER_STATEMENT if dialect == "sqlite" else len(ordered)
    for start in range(0, len(ordered), max(step, 1)):
        part = ordered[start : start + step]
        statement = window_statement(dialect, len(part))
        for row in statement.execute(uow, window_params(dialect, person_id, part)):
            net = out[part[row.window - 1]]  # full days and first day: two rows of an institution add up
            net[row.institution_id] = net.get(row.institution_id, 0) + int(row.units)
    return out


# The person's accepted scans since the widest window's start, from the index (person_id, scanned_at,
# prefecture) alone.
SCANS_IN_WINDOW = select(scans.prefecture, scans.scanned_at).where(
    scans.person_id == bindparam("person_id"), scans.scanned_at > bindparam("since")
)

# A refund gives back units of one code (never more than were sold), or all of the order.
_released = sales.released + bindparam("units")
RELEASE_UNITS = (
    update(Sale.__table__)
    .where(sales.order_ref == bindparam("b_order_ref"), sales.code == bindparam("b_code"))
    .values(released=case((_released > sales.quantity, sales.quantity), else_=_released))
)
RELEASE_ALL = (
    update(Sale.__table__).where(sales.order_ref == bindparam("b_order_ref")).values(released=sales.quantity)
)

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
_cache: dict[tuple[str, str], Any] = {}


def _insert(dialect: str, table: Any) -> Insert:
    return _INSERTS[dialect](table)


def _lock_person_statement(dialect: str) -> Any:
    stmt = _insert(dialect, PersonLock.__table__)
    return stmt.on_conflict_do_update(
        index_elements=["person_id"], set_={"locked_at": stmt.excluded.locked_at}
    )


# Create-or-touch the person's row: one statement that also row-locks it until commit (INSERT … ON
# CONFLICT DO UPDATE locks the existing row like SELECT … FOR UPDATE); on the driver's cursor.
_LOCK_PERSON = {
    name: Prepared(_lock_person_statement(name), ("person_id", "locked_at"))
    for name in ("postgresql", "sqlite")
}


def lock_person(uow: UnitOfWork, person_id: int, locked_at: datetime) -> None:
    """Row-lock the person's supervision row until the transaction ends (created on first use)."""
    _LOCK_PERSON[uow.dialect].run(uow, {"person_id": person_id, "locked_at": locked_at})


_SALE_COLUMNS = ("person_id", "code", "institution_id", "order_ref", "quantity", "released", "sold_at")
# Sales of one order (the pay hot path, on the driver's cursor): a retried pay records them once
# (unique order_ref, code).
_INSERT_SALES = {
    name: PreparedRows(
        lambda values, name=name: (
            _insert(name, Sale.__table__)
            .values(values)
            .on_conflict_do_nothing(index_elements=["order_ref", "code"])
        ),
        Sale.__table__,
        _SALE_COLUMNS,
    )
    for name in ("postgresql", "sqlite")
}


def insert_sales(uow: UnitOfWork, rows: Sequence[dict[str, Any]]) -> int:
    """Insert the sales rows (each with every column of _SALE_COLUMNS); how many were new."""
    return _INSERT_SALES[uow.dialect].run(uow, rows)


def insert_alerts(dialect: str) -> Any:
    """One alert per rule, subject and stage: a retried pay or a second recording adds nothing."""
    key = ("alerts", dialect)
    if key not in _cache:
        _cache[key] = _insert(dialect, Alert.__table__).on_conflict_do_nothing(
            index_elements=["rule_id", "subject_ref", "stage"]
        )
    return _cache[key]


# Every accepted scan's count (the verification hot path): on the driver's cursor.
INSERT_SCAN = Prepared(Scan.__table__.insert(), ("person_id", "prefecture", "scanned_at"))
