"""Prebuilt Core statements of the hot path (no ORM loads) and the dialect-specific upserts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert, Integer, bindparam, case, func, literal, select, true, union_all, update
from sqlalchemy.dialects import postgresql, sqlite

from .models import ORDER_KINDS, SCAN_KINDS, Alert, PersonLock, Rule, RulesState, Sale, Scan

# Core tables (not the mapped classes): these statements never go through the ORM.
rules, sales, scans = Rule.__table__.c, Sale.__table__.c, Scan.__table__.c
state = RulesState.__table__.c

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
# database: one branch per distinct (code, window start) of the rules that apply, in one round trip.
# Each branch is an index range on (person_id, code, sold_at) that only the rows inside that window
# reach, and only one row per institution comes back, however many sales the window holds.
def _sales_in_window(i: int) -> Any:
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
            sales.released < sales.quantity,
        )
        .group_by(sales.institution_id)
    )


_windows_cache: dict[int, Any] = {}


def sales_in_windows(n: int) -> Any:
    """The statement for n windows: rows (window, institution_id, units); bind person_id and, for each
    window i, code_i and since_i (events strictly after it count)."""
    if n not in _windows_cache:
        branches = [_sales_in_window(i) for i in range(n)]
        _windows_cache[n] = branches[0] if n == 1 else union_all(*branches)
    return _windows_cache[n]


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
