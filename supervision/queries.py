"""Prebuilt Core statements of the hot path (no ORM loads) and the dialect-specific upserts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Insert,
    Integer,
    String,
    and_,
    bindparam,
    case,
    func,
    literal,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from yibao.db import UnitOfWork, UTCDateTime
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
# index on (person_id, code, sold_at). The windows are a list of bound rows (i, code, since, day); two
# branches join it, one to each table, so each window is an index range into the day totals and one
# into its first day's sales (a nested loop), whatever the number of windows and codes: what a window
# reads is at most one row per day and institution plus one day's sales, however many sales it holds.
# An institution's two rows of a window add up (window_sums). On SQLite, which has no LATERAL and whose
# planner put the sales in the outer loop of that join, each window is instead its own two branches
# (_window_branches), bounded by the window's bound values.
Windows = dict[tuple[str, datetime], dict[int, int]]
_window_statements: dict[tuple[int, str], Any] = {}


def _per_window(w: Any, table: Any, where: Any, units: Any, institution_id: Any, lateral: bool) -> Any:
    """Each window's rows of `table` summed per institution. PostgreSQL: a LATERAL subquery, so the
    planner runs one index range per window (a plain join's estimate of ranges bounded by another
    table's columns made it scan the person's every sale); SQLite's planner nests the join so itself."""
    if lateral:
        per = select(institution_id, func.sum(units).label("units")).where(where).group_by(institution_id)
        per = per.lateral("per_window")
        columns = (w.c.i.label("window"), per.c.institution_id, per.c.units)
        return select(*columns).select_from(w.join(per, true()))
    return (
        select(w.c.i.label("window"), institution_id, func.sum(units).label("units"))
        .select_from(w)
        .join(table, where)
        .group_by(w.c.i, institution_id)
    )


def _window_branches(n: int) -> Any:
    """SQLite: two branches per window, each bounded by the window's own bound values (code_i, day_i,
    since_i), so each is one index range: SQLite's planner, given the windows as a joined table, put the
    person's every sale in the outer loop (273 ms a pay at 100 000 earlier orders in the 2026-12-01 17:19
    bench) and offers no LATERAL to keep it from doing so."""
    branches = []
    for i in range(n):
        code = bindparam(f"code_{i}", type_=String)
        day = bindparam(f"day_{i}", type_=UTCDateTime)
        since = bindparam(f"since_{i}", type_=UTCDateTime)
        branches.append(
            select(literal(i).label("window"), days.institution_id, func.sum(days.units).label("units"))
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
                literal(i).label("window"),
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


def _window_statement(n: int, dialect: str) -> Any:
    """For n windows: rows (window, institution_id, units), to be added up per (window,
    institution_id); bind window_params()."""
    key = (n, dialect)
    if key not in _window_statements and dialect == "sqlite":
        _window_statements[key] = _window_branches(n)
    if key not in _window_statements:
        rows = [
            select(
                literal(i).label("i"),
                bindparam(f"code_{i}", type_=String).label("code"),
                bindparam(f"since_{i}", type_=UTCDateTime).label("since"),
                bindparam(f"day_{i}", type_=UTCDateTime).label("day"),
            )
            for i in range(n)
        ]
        w = (rows[0] if n == 1 else union_all(*rows)).cte("windows")
        lateral = dialect == "postgresql"
        full_days = _per_window(
            w,
            SaleDay.__table__,
            and_(
                days.person_id == bindparam("person_id"),
                days.code == w.c.code,
                days.day >= w.c.day,
                days.units > 0,
            ),
            days.units,
            days.institution_id,
            lateral,
        )
        first_day = _per_window(
            w,
            Sale.__table__,
            and_(
                sales.person_id == bindparam("person_id"),
                sales.code == w.c.code,
                sales.sold_at > w.c.since,
                sales.sold_at < w.c.day,
                sales.released < sales.quantity,
            ),
            sales.quantity - sales.released,
            sales.institution_id,
            lateral,
        )
        _window_statements[key] = union_all(full_days, first_day)
    return _window_statements[key]


def next_midnight(at: datetime) -> datetime:
    """The first 00:00 UTC strictly after `at`: where a window starting at `at` has its full days."""
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, at.day, tzinfo=UTC) + timedelta(days=1)


def window_params(person_id: int, windows: Sequence[tuple[str, datetime]]) -> dict[str, Any]:
    """_window_statement(len(windows), dialect)'s parameters: window i counts windows[i][0] strictly after
    windows[i][1]."""
    params: dict[str, Any] = {"person_id": person_id}
    for i, (code, since) in enumerate(windows):
        params[f"code_{i}"], params[f"since_{i}"], params[f"day_{i}"] = code, since, next_midnight(since)
    return params


_window_prepared: dict[tuple[int, str], Prepared] = {}


def _prepared_windows(n: int, dialect: str) -> Prepared:
    """_window_statement run on the driver's cursor (yibao/prepared.py): with twenty windows its
    SQLAlchemy cache key alone cost more CPU than the statement."""
    key = (n, dialect)
    if key not in _window_prepared:
        names = [f"{p}_{i}" for i in range(n) for p in ("code", "since", "day")]
        _window_prepared[key] = Prepared(_window_statement(n, dialect), ("person_id", *names))
    return _window_prepared[key]


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
    step = SQLITE_WINDOWS_PER_STATEMENT if uow.dialect == "sqlite" else len(ordered)
    for start in range(0, len(ordered), max(step, 1)):
        part = ordered[start : start + step]
        statement = _prepared_windows(len(part), uow.dialect)
        for row in statement.execute(uow, window_params(person_id, part)):
            net = out[part[row.window]]  # full days and first day: two rows of an institution add up
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
