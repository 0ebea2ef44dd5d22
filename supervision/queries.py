"""Prebuilt Core statements of the hot path (no ORM loads) and the dialect-specific upserts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Insert, Integer, bindparam, case, func, literal, select, true, union_all, update
from sqlalchemy.dialects import postgresql, sqlite

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


# The person's still-counted units of one code per institution in one rule window, summed by the
# database: a window is its full UTC days, from supervision_sale_days (per-day totals kept by triggers,
# migration s0003), plus the sales of its first, partial day (strictly after the window's start, before
# the next midnight), from the covering index on (person_id, code, sold_at): at most one row per day and
# institution plus one day's sales, however many sales the window holds. Two branches per distinct
# (code, window start) of the rules that apply, all in one statement (one round trip, one snapshot).
# Both branches skip what counts nothing, so an institution comes back only with units to count; its
# rows of both branches add up (checks.check_order).
def _days_in_window(i: int) -> Any:
    return (
        select(literal(i).label("window"), days.institution_id, func.sum(days.units).label("units"))
        .where(
            days.person_id == bindparam("person_id"),
            days.code == bindparam(f"code_{i}"),
            days.day >= bindparam(f"day_{i}"),
            days.units > 0,
        )
        .group_by(days.institution_id)
    )


def _first_day_of_window(i: int) -> Any:
    return (
        select(
            literal(i).label("window"),
            sales.institution_id,
            func.sum(sales.quantity - sales.released).label("units"),
        )
        .where(
            sales.person_id == bindparam("person_id"),
            sales.code == bindparam(f"code_{i}"),
            sales.sold_at > bindparam(f"since_{i}"),
            sales.sold_at < bindparam(f"day_{i}"),
            sales.released < sales.quantity,
        )
        .group_by(sales.institution_id)
    )


_windows_cache: dict[int, Any] = {}


def sales_in_windows(n: int) -> Any:
    """The statement for n windows: rows (window, institution_id, units), an institution's units of a
    window possibly in two rows (add them up); bind window_params()."""
    if n not in _windows_cache:
        branches = (b(i) for i in range(n) for b in (_days_in_window, _first_day_of_window))
        _windows_cache[n] = union_all(*branches)
    return _windows_cache[n]


def next_midnight(at: datetime) -> datetime:
    """The first 00:00 UTC strictly after `at`: where a window starting at `at` has its full days."""
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, at.day, tzinfo=UTC) + timedelta(days=1)


def window_params(person_id: int, windows: Sequence[tuple[str, datetime]]) -> dict[str, Any]:
    """sales_in_windows(len(windows))'s parameters: window i counts code windows[i][0] strictly after
    windows[i][1]."""
    params: dict[str, Any] = {"person_id": person_id}
    for i, (code, since) in enumerate(windows):
        params[f"code_{i}"], params[f"since_{i}"], params[f"day_{i}"] = code, since, next_midnight(since)
    return params


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


def lock_person(dialect: str) -> Any:
    """Create-or-touch the person's row: one statement that also row-locks it until commit
    (INSERT … ON CONFLICT DO UPDATE locks the existing row like SELECT … FOR UPDATE)."""
    key = ("lock", dialect)
    if key not in _cache:
        stmt = _insert(dialect, PersonLock.__table__)
        _cache[key] = stmt.on_conflict_do_update(
            index_elements=["person_id"], set_={"locked_at": stmt.excluded.locked_at}
        )
    return _cache[key]


def insert_sales(dialect: str) -> Any:
    """Sales of one order: a retried pay records them once (unique order_ref, code)."""
    key = ("sales", dialect)
    if key not in _cache:
        _cache[key] = _insert(dialect, Sale.__table__).on_conflict_do_nothing(
            index_elements=["order_ref", "code"]
        )
    return _cache[key]


def insert_alerts(dialect: str) -> Any:
    """One alert per rule, subject and stage: a retried pay or a second recording adds nothing."""
    key = ("alerts", dialect)
    if key not in _cache:
        _cache[key] = _insert(dialect, Alert.__table__).on_conflict_do_nothing(
            index_elements=["rule_id", "subject_ref", "stage"]
        )
    return _cache[key]


INSERT_SCAN = Scan.__table__.insert()
