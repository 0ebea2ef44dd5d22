"""Prebuilt Core statements of the hot path (no ORM loads) and the dialect-specific upserts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
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


# The person's still-counted units per institution in every rule window, summed by the database in
# one pass over the rows: one branch per code of the rules that apply, an index range on
# (person_id, code, sold_at) from the code's widest window on, with one conditional sum per window of
# that code (`SUM(CASE WHEN sold_at > :since THEN units END)`). Twenty rules on one drug read the
# widest window's rows once, not twenty overlapping ranges; one row per institution comes back.
Windows = dict[tuple[str, datetime], dict[int, int]]
_window_statements: dict[tuple[int, ...], Any] = {}


def _window_statement(shape: tuple[int, ...]) -> Any:
    """For codes j with shape[j] windows each: rows (code, institution_id, w0 .. w{max-1}); bind
    person_id, code_j and since_j_k (ascending in k: since_j_0 is the code's widest window)."""
    if shape not in _window_statements:
        width = max(shape)
        units = sales.quantity - sales.released
        branches = []
        for j, n in enumerate(shape):
            sums = [
                func.sum(case((sales.sold_at > bindparam(f"since_{j}_{k}"), units), else_=0)).label(f"w{k}")
                if k < n
                else literal(0).label(f"w{k}")
                for k in range(width)
            ]
            branches.append(
                select(literal(j).label("code"), sales.institution_id, *sums)
                .where(
                    sales.person_id == bindparam("person_id"),
                    sales.code == bindparam(f"code_{j}"),
                    sales.sold_at > bindparam(f"since_{j}_0"),
                    sales.released < sales.quantity,
                )
                .group_by(sales.institution_id)
            )
        _window_statements[shape] = branches[0] if len(branches) == 1 else union_all(*branches)
    return _window_statements[shape]


def window_sums(conn: Any, person_id: int, windows: Iterable[tuple[str, datetime]]) -> Windows:
    """{(code, since): {institution_id: units}} for every window: the units of `code` the person was
    sold strictly after `since` and not given back, per institution that sold any (one statement)."""
    by_code: dict[str, list[datetime]] = {}
    for code, since in sorted(set(windows)):
        by_code.setdefault(code, []).append(since)
    out: Windows = {(code, since): {} for code, starts in by_code.items() for since in starts}
    if not by_code:
        return out
    codes = list(by_code)
    params: dict[str, Any] = {"person_id": person_id}
    for j, code in enumerate(codes):
        params[f"code_{j}"] = code
        for k, since in enumerate(by_code[code]):
            params[f"since_{j}_{k}"] = since
    statement = _window_statement(tuple(len(by_code[c]) for c in codes))
    for row in conn.execute(statement, params):
        code = codes[row.code]
        for k, since in enumerate(by_code[code]):
            units = int(row[2 + k] or 0)
            if units > 0:  # an institution counts in a window only for units sold inside it
                out[(code, since)][row.institution_id] = units
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
