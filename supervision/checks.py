"""The interface payments and voucher call (framework-free): check, then record what was accepted.

All functions work in the CALLER's unit of work and never commit. Order of calls:

- create_order: ``check_order(stage="create")`` before writing the order.
- pay: ``check_order(stage="pay")`` after the caller's own locks and before its debits (it takes the
  person's supervision lock itself when a rule applies), then ``record_sale`` in the same transaction.
- refund: ``record_refund`` in the refund's transaction.
- verification: ``check_scan`` before accepting, ``record_accepted_scan`` when the scan is accepted.

A blocked check raises SupervisionBlocked (422 SUPERVISION_BLOCKED, ``violations``). Its alerts are
written into the caller's unit of work too, but a caller that rolls back on the error (the usual case)
must record them in a fresh one: ``with db.uow() as u: record_blocked(u, exc); u.commit()``.
Recording twice is harmless (one alert per rule, subject and stage).

The enabled rules come from the worker's cache (rule_cache.py), never stale: a hot path adds
``rules_version_column()`` to the first statement it already runs and passes what it read as
``rules_version=``; a caller that passes None (the default) has the version read here (one statement).
The rules applied are those current at the request's first statement; a rule committed after it
applies from the next request. The person's supervision lock and the counting are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from yibao.db import UnitOfWork
from yibao.errors import AppError

from . import errors as _errors  # noqa: F401  (registers SUPERVISION_BLOCKED)
from . import queries as q
from . import rule_cache
from .evaluation import (
    Finding,
    evaluate_order,
    evaluate_scan,
    prefecture_of,
    units_by_code,
    window_start,
)

Line = tuple[str, int]  # (drug_code or item_code, quantity)


@dataclass(frozen=True)
class Verdict:
    """Allowed. `warnings` lists the warn rules broken (recorded as alerts): [{rule_id, kind, evidence}]."""

    warnings: list[dict[str, Any]] = field(default_factory=list)


class SupervisionBlocked(AppError):
    """A block rule is broken: 422 SUPERVISION_BLOCKED with violations [{rule_id, kind, evidence}]."""

    def __init__(self, violations: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> None:
        super().__init__("SUPERVISION_BLOCKED", violations=violations)
        self.alerts = alerts  # every alert of this check (blocks and warnings), for record_blocked


def lock_person(uow: UnitOfWork, person_id: int, *, now: datetime) -> None:
    """Row-lock the person's supervision row until the unit of work ends (created on first use).

    Two checks of one person (two counters, two scanners) then run one after the other, each seeing
    the other's recorded sale or scan: nobody sells the last allowed box twice.
    """
    q.lock_person(uow, person_id, now)


_VERSION_COLUMN = q.RULES_VERSION.scalar_subquery().label("rules_version")


def rules_version_column() -> Any:
    """The enabled rules' version as a column, ``(SELECT version FROM supervision_rules_state WHERE
    id = 1)`` labelled ``rules_version``: add it to the first statement of a request and pass the value
    as ``rules_version=`` to check_order / check_scan (no round trip of its own). NULL only if the
    version row were missing (then pass None: the checks read the rules uncached)."""
    return _VERSION_COLUMN


def _conclude(
    uow: UnitOfWork,
    findings: list[Finding],
    *,
    stage: str,
    subject_ref: str,
    person_id: int,
    institution_id: int,
    now: datetime,
) -> Verdict:
    if not findings:
        return Verdict()
    alerts = [
        {
            "rule_id": f.rule.pk,
            "kind": f.rule.kind,
            "action": f.action,
            "stage": stage,
            "subject_ref": subject_ref,
            "person_id": person_id,
            "institution_id": institution_id,
            "evidence": f.evidence,
            "created_at": now,
        }
        for f in findings
    ]
    uow.session.execute(q.insert_alerts(uow.dialect), alerts)
    blocks = [f.public() for f in findings if f.action == "block"]
    if blocks:
        raise SupervisionBlocked(blocks, alerts)
    return Verdict(warnings=[f.public() for f in findings])


def check_order(
    uow: UnitOfWork,
    *,
    person_id: int,
    institution_id: int,
    lines: Iterable[Line],
    stage: Literal["create", "pay"],
    order_ref: str,
    now: datetime,
    rules_version: int | None = None,
) -> Verdict:
    """Check an order's lines against the enabled quantity_limit and repeat_purchase rules.

    Counts the person's paid units of each code in each rule's window (less refunded units) plus this
    order, and the distinct institutions that sold it (this one included). At stage "pay" the
    person's supervision row is locked first (when any rule applies), so call it inside pay's
    transaction before record_sale. `rules_version`: what rules_version_column() read in the request's
    first statement (None: read here). Statements: none for the rules while the worker's cache holds
    that version (else one, rule_cache.py; one more for the version when None); with a rule on a code of
    the order, one lock (pay only) and one read of per-institution sums (per window: an index range into
    the day totals and one into its first day's sales; queries.window_sums); one alert insert when a
    rule is broken.

    Raises SUPERVISION_BLOCKED (SupervisionBlocked) when a block rule is broken.
    """
    units = units_by_code(lines)
    if not units:
        return Verdict()
    rules = rule_cache.order_rules(uow, list(units), version=rules_version)
    if not rules:
        return Verdict()
    if stage == "pay":
        lock_person(uow, person_id, now=now)
    windows = {(r.params["drug_code"], window_start(now, r)) for r in rules}
    counted = q.window_sums(uow, person_id, windows)
    findings = evaluate_order(rules, counted, units=units, institution_id=institution_id, now=now)
    return _conclude(
        uow,
        findings,
        stage=stage,
        subject_ref=order_ref,
        person_id=person_id,
        institution_id=institution_id,
        now=now,
    )


def record_sale(
    uow: UnitOfWork,
    *,
    person_id: int,
    institution_id: int,
    lines: Iterable[Line],
    order_ref: str,
    at: datetime,
) -> None:
    """Count a paid order's units (one statement; a retry of the same order adds nothing)."""
    units = units_by_code(lines)
    if not units:
        return
    rows = [
        {
            "person_id": person_id,
            "code": code,
            "institution_id": institution_id,
            "order_ref": order_ref,
            "quantity": quantity,
            "released": 0,
            "sold_at": at,
        }
        # in code order, as refunds release them: the day totals' row locks (the s0003 triggers) are
        # then always taken in one order, so two transactions of one person never deadlock on them
        for code, quantity in sorted(units.items())
    ]
    q.insert_sales(uow, rows)


def record_refund(uow: UnitOfWork, *, order_ref: str, lines_released: Iterable[Line] | None = None) -> None:
    """Give back the units a refund releases: per code, or every unit of the order when None.

    The units leave exactly the windows that counted them (they were counted at the sale's time);
    never more than were sold. An order never recorded (or a code not in it) is a no-op.
    """
    if lines_released is None:
        uow.session.execute(q.RELEASE_ALL, {"b_order_ref": order_ref})
        return
    params = [
        {"b_order_ref": order_ref, "b_code": code, "units": n}
        for code, n in sorted(units_by_code(lines_released).items())  # code order, as record_sale
    ]
    if params:
        uow.session.execute(q.RELEASE_UNITS, params)


def check_scan(
    uow: UnitOfWork,
    *,
    person_id: int,
    institution_id: int,
    institution_region: str,
    scan_ref: str,
    now: datetime,
    rules_version: int | None = None,
) -> Verdict:
    """Check a scan against the enabled identity_velocity rules: distinct prefectures of the person's
    accepted scans in the window, this one included. Locks the person's supervision row when a rule
    applies (call record_accepted_scan in the same transaction). `rules_version`: as for check_order.

    Raises SUPERVISION_BLOCKED (SupervisionBlocked) when a block rule is broken.
    """
    rules = rule_cache.scan_rules(uow, version=rules_version)
    if not rules:
        return Verdict()
    lock_person(uow, person_id, now=now)
    since = min(window_start(now, r) for r in rules)
    scans = [
        (r.prefecture, r.scanned_at)
        for r in uow.session.execute(q.SCANS_IN_WINDOW, {"person_id": person_id, "since": since})
    ]
    findings = evaluate_scan(rules, scans, prefecture=prefecture_of(institution_region), now=now)
    return _conclude(
        uow,
        findings,
        stage="verify",
        subject_ref=scan_ref,
        person_id=person_id,
        institution_id=institution_id,
        now=now,
    )


def record_accepted_scan(uow: UnitOfWork, *, person_id: int, institution_region: str, at: datetime) -> None:
    """Count an accepted scan by its prefecture (one statement)."""
    q.INSERT_SCAN.run(
        uow, {"person_id": person_id, "prefecture": prefecture_of(institution_region), "scanned_at": at}
    )


def record_blocked(uow: UnitOfWork, exc: SupervisionBlocked) -> None:
    """Record a blocked check's alerts in a fresh unit of work (the caller's was rolled back)."""
    uow.session.execute(q.insert_alerts(uow.dialect), exc.alerts)
