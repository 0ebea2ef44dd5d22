"""Supervision endpoints: operators' rules and alerts; a person's own alerts."""

from __future__ import annotations

from typing import Any

from yibao.api import Blueprint, current_user
from yibao.db import db

from . import alerts, rules
from .schemas import (
    SupervisionAlertPage,
    SupervisionAlertQuery,
    SupervisionMyAlertPage,
    SupervisionMyAlertQuery,
    SupervisionOperatorHeaders,
    SupervisionRuleChangeList,
    SupervisionRuleIn,
    SupervisionRuleListQuery,
    SupervisionRuleOut,
    SupervisionRulePage,
    SupervisionRulePatch,
)

admin_blp = Blueprint(
    "supervision_admin",
    __name__,
    url_prefix="/api/v1/admin",
    description="Fund supervision (智能监控): rules and alerts, for operators",
)
user_blp = Blueprint(
    "supervision", __name__, url_prefix="/api/v1/supervision", description="Fund supervision: your alerts"
)


def _operator(headers: dict) -> str:
    return f"admin:{headers['operator']}" if headers.get("operator") else "admin"


@admin_blp.route("/supervision-rules", methods=["POST"])
@admin_blp.admin
@admin_blp.arguments(SupervisionOperatorHeaders, location="headers", as_kwargs=False)
@admin_blp.arguments(SupervisionRuleIn)
@admin_blp.response(201, SupervisionRuleOut)
@admin_blp.problems()
def create_rule(headers: dict, args: dict) -> Any:
    """Add a supervision rule (enabled at once; the change is audited)."""
    with db.uow() as uow:
        rule = rules.create_rule(uow, **args, operator=_operator(headers))
        uow.commit()
        return rule


@admin_blp.route("/supervision-rules", methods=["GET"])
@admin_blp.admin
@admin_blp.arguments(SupervisionRuleListQuery, location="query")
@admin_blp.response(200, SupervisionRulePage)
@admin_blp.problems()
def list_rules(args: dict) -> Any:
    """Rules in creation order (?cursor= the previous page's next_cursor)."""
    with db.uow(readonly=True) as uow:
        items, next_cursor = rules.list_rules(uow, **args)
        return {"items": items, "next_cursor": next_cursor}


@admin_blp.route("/supervision-rules/<rule_id>", methods=["PATCH"])
@admin_blp.admin
@admin_blp.arguments(SupervisionOperatorHeaders, location="headers", as_kwargs=False)
@admin_blp.arguments(SupervisionRulePatch)
@admin_blp.response(200, SupervisionRuleOut)
@admin_blp.problems("SUPERVISION_RULE_NOT_FOUND")
def update_rule(headers: dict, args: dict, rule_id: str) -> Any:
    """Enable or disable a rule, effective for the next check (the change is audited)."""
    with db.uow() as uow:
        rule = rules.set_enabled(uow, rule_id, args["enabled"], operator=_operator(headers))
        uow.commit()
        return rule


@admin_blp.route("/supervision-rules/<rule_id>/changes", methods=["GET"])
@admin_blp.admin
@admin_blp.response(200, SupervisionRuleChangeList)
@admin_blp.problems("SUPERVISION_RULE_NOT_FOUND")
def rule_changes(rule_id: str) -> Any:
    """A rule's audit trail, oldest first: who changed what, when, before and after."""
    with db.uow(readonly=True) as uow:
        return {"items": rules.rule_changes(uow, rule_id)}


@admin_blp.route("/supervision-alerts", methods=["GET"])
@admin_blp.admin
@admin_blp.arguments(SupervisionAlertQuery, location="query")
@admin_blp.response(200, SupervisionAlertPage)
@admin_blp.problems()
def list_alerts(args: dict) -> Any:
    """Alerts (blocks and warnings), masked, in the order raised; filter by rule, institution, time."""
    with db.uow(readonly=True) as uow:
        items, next_cursor = alerts.list_alerts(uow, **args)
        return {"items": items, "next_cursor": next_cursor}


@user_blp.route("/alerts/me", methods=["GET"])
@user_blp.user
@user_blp.arguments(SupervisionMyAlertQuery, location="query")
@user_blp.response(200, SupervisionMyAlertPage)
@user_blp.problems()
def my_alerts(args: dict) -> Any:
    """The supervision alerts about you, newest first: who checked (institution), when and why."""
    with db.uow(readonly=True) as uow:
        items, next_cursor = alerts.alerts_of_person(uow, person_id=current_user().person_id, **args)
        return {"items": items, "next_cursor": next_cursor}
