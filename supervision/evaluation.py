"""The rules' arithmetic, free of any database: windows, counts and when a rule is broken.

Windows are rolling and end now: an event at instant t counts when now - window < t (an event exactly
one window old has dropped out; one a microsecond younger still counts). There is no upper bound, so an
event stamped slightly in the future by another server's clock still counts. A rule is broken when the
count, this order or scan included, is GREATER than its maximum: exactly at the maximum is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class RuleRow:
    pk: int
    rule_id: str
    kind: str
    action: str
    params: Mapping[str, Any]

    @cached_property
    def span(self) -> timedelta:
        """The rule's window (window_minutes or window_days), computed once per cached rule."""
        p = self.params
        if "window_minutes" in p:
            return timedelta(minutes=p["window_minutes"])
        return timedelta(days=p["window_days"])


@dataclass(frozen=True)
class Finding:
    """A rule broken by this order or scan; `action` says whether it blocks or warns."""

    rule: RuleRow
    evidence: dict[str, Any] = field(hash=False)

    @property
    def action(self) -> str:
        return self.rule.action

    def public(self) -> dict[str, Any]:
        """What the counter, the operator and the person see: {rule_id, kind, evidence}."""
        return {"rule_id": self.rule.rule_id, "kind": self.rule.kind, "evidence": self.evidence}


def window_start(now: datetime, rule: RuleRow) -> datetime:
    """Events strictly after this instant are in the rule's window."""
    return now - rule.span


def in_window(at: datetime, *, now: datetime, rule: RuleRow) -> bool:
    return at > window_start(now, rule)


def broken(count: int, maximum: int) -> bool:
    return count > maximum


def units_by_code(lines: Iterable[tuple[str, int]]) -> dict[str, int]:
    """An order's lines summed per code (two lines of one drug count together)."""
    out: dict[str, int] = {}
    for code, quantity in lines:
        if quantity <= 0:
            raise ValueError("a line's quantity must be positive")
        out[code] = out.get(code, 0) + quantity
    return out


Counted = Mapping[tuple[str, datetime], Mapping[int, int]]


def evaluate_order(
    rules: Iterable[RuleRow],
    counted: Counted,
    *,
    units: Mapping[str, int],
    institution_id: int,
    now: datetime,
) -> list[Finding]:
    """The order rules this order breaks, given the person's still-counted units per institution in
    each rule's window: counted[(drug_code, window_start(now, rule))] = {institution_id: units}."""
    findings = []
    for rule in rules:
        code = rule.params["drug_code"]
        net = counted.get((code, window_start(now, rule)), {})
        days = rule.params["window_days"]
        if rule.kind == "quantity_limit":
            counted_units = sum(net.values())
            total = counted_units + units[code]
            if broken(total, rule.params["max_quantity"]):
                evidence = {
                    "drug_code": code,
                    "window_days": days,
                    "max_quantity": rule.params["max_quantity"],
                    "counted_quantity": counted_units,
                    "this_order_quantity": units[code],
                    "total_quantity": total,
                }
                findings.append(Finding(rule, evidence))
        elif rule.kind == "repeat_purchase":
            others = {i for i, n in net.items() if n > 0} - {institution_id}
            count = len(others) + 1
            if broken(count, rule.params["max_institutions"]):
                evidence = {
                    "drug_code": code,
                    "window_days": days,
                    "max_institutions": rule.params["max_institutions"],
                    "institutions": count,
                }
                findings.append(Finding(rule, evidence))
    return findings


def evaluate_scan(
    rules: Iterable[RuleRow], scans: Iterable[tuple[str, datetime]], *, prefecture: str, now: datetime
) -> list[Finding]:
    """The identity rules this scan breaks, given the person's accepted scans (prefecture, at)."""
    scans = list(scans)
    findings = []
    for rule in rules:
        seen = {p for p, at in scans if in_window(at, now=now, rule=rule)} | {prefecture}
        if broken(len(seen), rule.params["max_prefectures"]):
            evidence = {
                "window_minutes": rule.params["window_minutes"],
                "max_prefectures": rule.params["max_prefectures"],
                "prefectures": len(seen),
            }
            findings.append(Finding(rule, evidence))
    return findings


def prefecture_of(region: str) -> str:
    """The prefecture (地市) of a six-digit region code: its first four digits."""
    if len(region) != 6 or not region.isdigit():
        raise ValueError("a region is six digits")
    return region[:4]
