"""Operator commands: `yibao supervision rule add|list|enable|disable|history` and `summary`."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
from flask.cli import with_appcontext
from marshmallow import ValidationError

from yibao.china_time import china_date
from yibao.db import db, utcnow
from yibao.errors import AppError

from . import alerts, rules
from .schemas import SupervisionRuleChangeOut, SupervisionRuleIn, SupervisionRuleOut

OPERATOR_OPTION = click.option(
    "--operator", default="cli", show_default=True, help="Who makes the change (kept in the audit trail)."
)


def _echo(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _fail(exc: AppError) -> click.ClickException:
    return click.ClickException(f"{exc.code}{': ' + exc.detail if exc.detail else ''}")


@click.group("supervision")
def supervision_cli() -> None:
    """Fund supervision rules and alerts."""


@supervision_cli.group("rule")
def rule_cli() -> None:
    """Supervision rules."""


@rule_cli.command("add")
@click.option("--kind", required=True, help="quantity_limit | repeat_purchase | identity_velocity")
@click.option("--params", "params_json", required=True, help='JSON, e.g. \'{"drug_code": "X", ...}\'')
@click.option("--action", required=True, help="block | warn")
@click.option("--description", default=None)
@OPERATOR_OPTION
@with_appcontext
def rule_add(kind: str, params_json: str, action: str, description: str | None, operator: str) -> None:
    """Add a rule (validated exactly as the API does)."""
    try:
        params = json.loads(params_json)
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"--params is not JSON: {exc}") from exc
    body = {"kind": kind, "params": params, "action": action}
    if description is not None:
        body["description"] = description
    try:
        args = SupervisionRuleIn().load(body)
    except ValidationError as exc:
        raise click.UsageError(json.dumps(exc.messages, ensure_ascii=False)) from exc
    with db.uow() as uow:
        rule = rules.create_rule(uow, **args, operator=f"cli:{operator}")
        uow.commit()
        _echo(SupervisionRuleOut().dump(rule))


@rule_cli.command("list")
@with_appcontext
def rule_list() -> None:
    """Every rule, in creation order."""
    out, cursor = [], None
    with db.uow(readonly=True) as uow:
        while True:
            page, cursor = rules.list_rules(uow, limit=200, cursor=cursor)
            out += SupervisionRuleOut(many=True).dump(page)
            if cursor is None:
                break
    _echo(out)


def _set(rule_id: str, enabled: bool, operator: str) -> None:
    try:
        with db.uow() as uow:
            rule = rules.set_enabled(uow, rule_id, enabled, operator=f"cli:{operator}")
            uow.commit()
            _echo(SupervisionRuleOut().dump(rule))
    except AppError as exc:
        raise _fail(exc) from exc


@rule_cli.command("enable")
@click.argument("rule_id")
@OPERATOR_OPTION
@with_appcontext
def rule_enable(rule_id: str, operator: str) -> None:
    """Enable a rule."""
    _set(rule_id, True, operator)


@rule_cli.command("disable")
@click.argument("rule_id")
@OPERATOR_OPTION
@with_appcontext
def rule_disable(rule_id: str, operator: str) -> None:
    """Disable a rule."""
    _set(rule_id, False, operator)


@rule_cli.command("history")
@click.argument("rule_id")
@with_appcontext
def rule_history(rule_id: str) -> None:
    """A rule's audit trail."""
    try:
        with db.uow(readonly=True) as uow:
            _echo(SupervisionRuleChangeOut(many=True).dump(rules.rule_changes(uow, rule_id)))
    except AppError as exc:
        raise _fail(exc) from exc


@supervision_cli.command("summary")
@click.option(
    "--day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="A Beijing calendar day (default: today in Beijing).",
)
@with_appcontext
def summary(day: datetime | None) -> None:
    """Alerts per rule on one day: blocked, warned, by stage, persons and institutions concerned."""
    d = day.date() if day is not None else china_date(utcnow())
    with db.uow(readonly=True) as uow:
        _echo(alerts.daily_summary(uow, d))
