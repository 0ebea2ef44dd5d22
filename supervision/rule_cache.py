"""The enabled rules, cached per worker and never stale: reloaded whenever the database's version moved.

The database keeps the version (supervision_rules_state, one row, migration s0002): triggers on
supervision_rules bump it on every INSERT, UPDATE or DELETE, so a rule changed through the admin API, the
CLI or hand-typed SQL is seen alike. A hot path reads the version in the first statement it already runs
(checks.rules_version_column(): a scalar subquery, no extra round trip) and passes it to check_order /
check_scan (`rules_version=`); another caller passes None and the version is read here (one statement).

- Version equal to the cached one: the cached rules, no statement.
- Otherwise: one statement reads the version and every enabled rule together (one snapshot, so an entry
  never pairs rules with another version), which replaces the entry. Those rules are at least as new as the
  request's version.

So the rules applied are those current at the request's first statement (or newer ones, when this worker
reloaded meanwhile); a rule committed after that statement applies from the next request. Fail closed:
with the version row missing, or more than MAX_RULES enabled rules, every check reads the rules it needs
from the database as before (never skipped). The person's supervision lock and the counting in the
database are unchanged.

Each app has its own cache (app.extensions), like a worker: two apps on one database are two workers.
The entry is one snapshot (the newest read), its size bounded by MAX_RULES, and it is reloaded at least
every MAX_AGE_SECONDS even at the same version: the bound for a change that bypassed the triggers
(a restore with --disable-triggers, session_replication_role = replica, a disabled trigger).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import current_app, has_app_context

from yibao.db import UnitOfWork

from . import queries as q
from .evaluation import RuleRow
from .models import SCAN_KINDS

EXTENSION = "supervision.rule_cache"
MAX_RULES = 2000  # more enabled rules than this are not cached: each check reads its own (as before)


def rule_rows(rows: Iterable[Any]) -> list[RuleRow]:
    """RuleRows from rows of the rule columns (queries._RULE_COLUMNS)."""
    return [RuleRow(r.id, r.rule_id, r.kind, r.action, r.params) for r in rows]


@dataclass(frozen=True)
class Snapshot:
    """The enabled rules at one version: order rules by drug_code, the scan rules, each in id order.
    Not `complete` (no rules held) when there were more than MAX_RULES: each check reads its own."""

    version: int
    by_code: dict[str, tuple[RuleRow, ...]]
    scan: tuple[RuleRow, ...]
    complete: bool = True

    @classmethod
    def of(cls, version: int, rows: Iterable[Any]) -> Snapshot:
        by_code: dict[str, list[RuleRow]] = {}
        scan: list[RuleRow] = []
        for r in rows:
            rule = RuleRow(r.id, r.rule_id, r.kind, r.action, r.params)
            if r.kind in SCAN_KINDS:
                scan.append(rule)
            else:
                by_code.setdefault(r.drug_code, []).append(rule)
        return cls(version, {c: tuple(v) for c, v in by_code.items()}, tuple(scan))

    def order_rules(self, codes: Iterable[str]) -> list[RuleRow]:
        """The order rules on any of these (distinct) codes, in id order."""
        found = [r for c in codes for r in self.by_code.get(c, ())]
        if len(found) > 1:
            found.sort(key=lambda r: r.pk)
        return found

    @property
    def size(self) -> int:
        return len(self.scan) + sum(len(v) for v in self.by_code.values())


# Even at the same version a worker reloads its rules this often: the bound for a change that bypassed
# the triggers (a restore with --disable-triggers, session_replication_role=replica, a disabled trigger).
MAX_AGE_SECONDS = 60.0


class RuleCache:
    """One app's (one worker's) entry; `loads` counts the reloads (tests and diagnostics)."""

    def __init__(self) -> None:
        self.entry: Snapshot | None = None
        self.loaded_at = 0.0  # time.monotonic() of the entry's load
        self.loads = 0


def for_app() -> RuleCache | None:
    """The current app's cache (created on first use); None outside an app context (no caching)."""
    if not has_app_context():
        return None
    ext = current_app.extensions
    cache = ext.get(EXTENSION)
    return cache if cache is not None else ext.setdefault(EXTENSION, RuleCache())


def _load(uow: UnitOfWork) -> Snapshot | None:
    """The version and the enabled rules in one statement; None when the version row is missing."""
    rows = uow.session.execute(q.RULES_WITH_VERSION, {"n": MAX_RULES + 1}).all()
    if not rows:
        return None
    if len(rows) > MAX_RULES:
        return Snapshot(rows[0].version, {}, (), complete=False)
    return Snapshot.of(rows[0].version, (r for r in rows if r.id is not None))


def current(uow: UnitOfWork, version: int | None) -> Snapshot | None:
    """The enabled rules as of `version` (read here when None) or newer; None (no version row) or an
    incomplete snapshot: read them uncached."""
    if version is None:
        version = uow.session.scalar(q.RULES_VERSION)
        if version is None:
            return None
    cache = for_app()
    entry = cache.entry if cache is not None else None
    fresh = cache is not None and time.monotonic() - cache.loaded_at < MAX_AGE_SECONDS
    if entry is not None and entry.version == version and fresh:
        return entry
    entry = _load(uow)
    if cache is not None:
        cache.entry, cache.loaded_at = entry, time.monotonic()
        cache.loads += 1
    return entry


def order_rules(uow: UnitOfWork, codes: Sequence[str], *, version: int | None) -> list[RuleRow]:
    """The enabled quantity_limit and repeat_purchase rules on these codes."""
    snap = current(uow, version)
    if snap is None or not snap.complete:
        return rule_rows(uow.session.execute(q.ORDER_RULES, {"codes": list(codes)}))
    return snap.order_rules(codes)


def scan_rules(uow: UnitOfWork, *, version: int | None) -> list[RuleRow]:
    """The enabled identity_velocity rules."""
    snap = current(uow, version)
    if snap is None or not snap.complete:
        return rule_rows(uow.session.execute(q.SCAN_RULES))
    return list(snap.scan)
