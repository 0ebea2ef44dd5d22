"""Operators' rules: create, list, enable and disable, each change audited (supervision_rule_changes)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import select

from yibao.db import UnitOfWork, utcnow
from yibao.errors import AppError

from . import errors as _errors  # noqa: F401  (registers SUPERVISION_RULE_NOT_FOUND)
from .models import Rule, RuleChange


def _snapshot(rule: Rule) -> dict[str, Any]:
    return {
        "kind": rule.kind,
        "params": dict(rule.params),
        "action": rule.action,
        "description": rule.description,
        "enabled": rule.enabled,
    }


def _audit(
    uow: UnitOfWork, rule: Rule, change: str, operator: str, before: dict | None, at: datetime
) -> None:
    uow.session.add(
        RuleChange(
            rule_id=rule.id, change=change, operator=operator, before=before, after=_snapshot(rule), at=at
        )
    )


def create_rule(
    uow: UnitOfWork,
    *,
    kind: str,
    params: dict[str, Any],
    action: str,
    description: str | None = None,
    operator: str,
) -> Rule:
    """Add an enabled rule. `params` must already be validated (schemas.SupervisionRuleIn) for its kind."""
    now = utcnow()
    rule = Rule(
        rule_id="SR" + secrets.token_hex(6).upper(),
        kind=kind,
        params=dict(params),
        drug_code=params.get("drug_code"),
        action=action,
        description=description,
        enabled=True,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(rule)
    uow.session.flush()
    _audit(uow, rule, "created", operator, None, now)
    return rule


def require_rule(uow: UnitOfWork, rule_id: str, *, lock: bool = False) -> Rule:
    """The rule by its public id; raises SUPERVISION_RULE_NOT_FOUND."""
    stmt = select(Rule).where(Rule.rule_id == rule_id)
    rule = uow.session.scalar(stmt.with_for_update() if lock else stmt)
    if rule is None:
        raise AppError("SUPERVISION_RULE_NOT_FOUND")
    return rule


def set_enabled(uow: UnitOfWork, rule_id: str, enabled: bool, *, operator: str) -> Rule:
    """Enable or disable a rule, effective for the next check; a real change is audited (a repeat of
    the current state changes nothing and records nothing). Raises SUPERVISION_RULE_NOT_FOUND."""
    rule = require_rule(uow, rule_id, lock=True)
    if rule.enabled == enabled:
        return rule
    before = _snapshot(rule)
    now = utcnow()
    rule.enabled = enabled
    rule.updated_at = now
    _audit(uow, rule, "enabled" if enabled else "disabled", operator, before, now)
    return rule


def list_rules(
    uow: UnitOfWork,
    *,
    kind: str | None = None,
    enabled: bool | None = None,
    limit: int = 50,
    cursor: int | None = None,
) -> tuple[list[Rule], int | None]:
    """Rules in creation order, a keyset page: (rules, next_cursor)."""
    stmt = select(Rule).order_by(Rule.id).limit(limit + 1)
    if kind is not None:
        stmt = stmt.where(Rule.kind == kind)
    if enabled is not None:
        stmt = stmt.where(Rule.enabled == enabled)
    if cursor is not None:
        stmt = stmt.where(Rule.id > cursor)
    rows = list(uow.session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more else None)


def rule_changes(uow: UnitOfWork, rule_id: str) -> list[RuleChange]:
    """A rule's audit trail, oldest first. Raises SUPERVISION_RULE_NOT_FOUND."""
    rule = require_rule(uow, rule_id)
    return list(
        uow.session.scalars(select(RuleChange).where(RuleChange.rule_id == rule.id).order_by(RuleChange.id))
    )
