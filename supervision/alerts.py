"""Alerts as operators and persons see them (masked), and the daily summary per rule."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import distinct, func, select

from yibao.china_time import day_bounds
from yibao.db import UnitOfWork
from yibao.registry.models import Institution, Person

from .models import Alert, Rule

_ALERT_ROWS = (
    select(
        Alert.id,
        Rule.rule_id,
        Alert.kind,
        Alert.action,
        Alert.stage,
        Alert.subject_ref,
        Alert.evidence,
        Alert.created_at,
        Person.psn_no,
        Person.name_masked,
        Institution.org_id,
        Institution.name.label("institution_name"),
    )
    .join(Rule, Rule.id == Alert.rule_id)
    .join(Person, Person.id == Alert.person_id)
    .join(Institution, Institution.id == Alert.institution_id)
)


def _view(r: Any) -> dict[str, Any]:
    return {
        "alert_id": r.id,
        "rule_id": r.rule_id,
        "kind": r.kind,
        "action": r.action,
        "stage": r.stage,
        "subject_ref": r.subject_ref,
        "person": {"psn_no": r.psn_no, "name_masked": r.name_masked},
        "institution": {"org_id": r.org_id, "name": r.institution_name},
        "evidence": r.evidence,
        "created_at": r.created_at,
    }


def list_alerts(
    uow: UnitOfWork,
    *,
    rule_id: str | None = None,
    institution: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    cursor: int | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """Alerts in the order they were raised, filtered, a keyset page: (alerts, next_cursor)."""
    stmt = _ALERT_ROWS.order_by(Alert.id).limit(limit + 1)
    if rule_id is not None:
        stmt = stmt.where(Rule.rule_id == rule_id)
    if institution is not None:
        stmt = stmt.where(Institution.org_id == institution)
    if since is not None:
        stmt = stmt.where(Alert.created_at >= since)
    if cursor is not None:
        stmt = stmt.where(Alert.id > cursor)
    rows = uow.session.execute(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [_view(r) for r in rows], (rows[-1].id if more else None)


def alerts_of_person(
    uow: UnitOfWork, *, person_id: int, limit: int = 20, cursor: int | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """The alerts about one person, newest first: who checked (institution), when, why. Nothing of
    anybody else (evidence holds only this person's counts)."""
    stmt = _ALERT_ROWS.where(Alert.person_id == person_id).order_by(Alert.id.desc()).limit(limit + 1)
    if cursor is not None:
        stmt = stmt.where(Alert.id < cursor)
    rows = uow.session.execute(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        {
            "alert_id": r.id,
            "kind": r.kind,
            "action": r.action,
            "stage": r.stage,
            "institution": {"org_id": r.org_id, "name": r.institution_name},
            "evidence": r.evidence,
            "created_at": r.created_at,
        }
        for r in rows
    ]
    return items, (rows[-1].id if more else None)


def daily_summary(uow: UnitOfWork, day: date) -> dict[str, Any]:
    """Per rule, the alerts raised on one Beijing calendar day: blocks and warnings, by stage, and how
    many persons and institutions they concern. Every rule is listed, with zeros when quiet."""
    start, end = day_bounds(day)
    in_day = (Alert.created_at >= start) & (Alert.created_at < end)
    counts = uow.session.execute(
        select(Alert.rule_id, Alert.action, Alert.stage, func.count())
        .where(in_day)
        .group_by(Alert.rule_id, Alert.action, Alert.stage)
    ).all()
    reach = {
        r.rule_id: (r.persons, r.institutions)
        for r in uow.session.execute(
            select(
                Alert.rule_id,
                func.count(distinct(Alert.person_id)).label("persons"),
                func.count(distinct(Alert.institution_id)).label("institutions"),
            )
            .where(in_day)
            .group_by(Alert.rule_id)
        )
    }
    rules = uow.session.execute(
        select(Rule.id, Rule.rule_id, Rule.kind, Rule.action, Rule.enabled, Rule.description).order_by(
            Rule.id
        )
    ).all()
    out = []
    for rule in rules:
        mine = [c for c in counts if c[0] == rule.id]
        persons, institutions = reach.get(rule.id, (0, 0))
        out.append(
            {
                "rule_id": rule.rule_id,
                "kind": rule.kind,
                "action": rule.action,
                "enabled": rule.enabled,
                "description": rule.description,
                "alerts": sum(c[3] for c in mine),
                "blocked": sum(c[3] for c in mine if c[1] == "block"),
                "warned": sum(c[3] for c in mine if c[1] == "warn"),
                "by_stage": {s: sum(c[3] for c in mine if c[2] == s) for s in ("create", "pay", "verify")},
                "persons": persons,
                "institutions": institutions,
            }
        )
    return {"day": day.isoformat(), "timezone": "Asia/Shanghai", "rules": out}
