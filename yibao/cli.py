"""Operator command line: `yibao ...` (or `flask --app yibao ...`)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from marshmallow import ValidationError

from yibao import partitions
from yibao.db import db, utcnow
from yibao.errors import AppError
from yibao.registry import services as registry
from yibao.registry.models import ASSISTANCE_CATEGORIES, INSTITUTION_LEVELS
from yibao.registry.schemas import (
    FilingCreateSchema,
    InstitutionCreateSchema,
    InstitutionUpdateSchema,
    PersonCreateSchema,
    PersonUpdateSchema,
)


def _echo(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _load(schema: Any, data: dict) -> dict:
    try:
        return schema.load({k: v for k, v in data.items() if v is not None})
    except ValidationError as exc:
        raise click.UsageError(json.dumps(exc.messages, ensure_ascii=False)) from exc


def _run(fn: Any) -> Any:
    try:
        return fn()
    except AppError as exc:
        fields = exc.extra.get("errors")
        why = f": {exc.detail}" if exc.detail else ""
        why += f" {json.dumps(fields, ensure_ascii=False)}" if fields else ""
        raise click.ClickException(f"{exc.code}{why}") from exc


@click.group("db")
def db_cli() -> None:
    """Database schema."""


@db_cli.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Apply all migrations."""
    from sqlalchemy.exc import OperationalError

    from yibao.migrate import upgrade

    try:
        upgrade(current_app.config["DATABASE_URL"])
        partitions.ensure_all(current_app, db.engine, utcnow())  # this and next month's partitions
    except OperationalError as exc:  # a clear message, not a stack trace, for an unreachable database
        raise click.ClickException(f"DATABASE_UNAVAILABLE: {exc.orig}") from exc
    click.echo("database is up to date")


@click.group("maintenance")
def maintenance_cli() -> None:
    """Partitions and retention of the tables that grow with every scan or request."""


@maintenance_cli.command("ensure-partitions")
@click.option("--ahead", type=click.IntRange(0, 24), default=1, show_default=True, help="Months after this.")
@with_appcontext
def ensure_partitions(ahead: int) -> None:
    """Create this month's and the next months' partitions (PostgreSQL; nothing to do on SQLite)."""
    _echo({"created": partitions.ensure_all(current_app, db.engine, utcnow(), ahead)})


@maintenance_cli.command("prune")
@click.option("--older-than", "older_than", required=True, help="e.g. 90d, 36h, 2w (s, m, h, d, w).")
@with_appcontext
def prune(older_than: str) -> None:
    """Drop whole month partitions (PostgreSQL) or delete rows (SQLite) older than --older-than.

    Never what a table still needs: each table keeps its minimum (single-use rows until their code
    can no longer verify, idempotency keys their 24 h, the usage audit YIBAO_USAGE_RETENTION_DAYS,
    webhook events until delivered). Creates the partitions ahead too, so it can run alone from cron.
    """
    try:
        age = partitions.parse_duration(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from exc
    now = utcnow()
    out: dict[str, Any] = {}
    for spec in partitions.registered(current_app):
        cutoff = partitions.cutoff_of(spec, current_app.config, age, now)
        with db.engine.begin() as conn:  # one table at a time: short locks
            out[spec.table] = partitions.prune(conn, spec, cutoff, now)
    _echo({"pruned": out, "created": partitions.ensure_all(current_app, db.engine, utcnow())})


@click.group("person")
def person_cli() -> None:
    """Insured persons."""


@person_cli.command("create")
@click.option("--name", required=True)
@click.option("--id-number", required=True)
@click.option("--insurance-type", type=click.Choice(["employee", "resident"]), required=True)
@click.option("--region", "insured_region", required=True)
@click.option("--balance-fen", "personal_account_balance_fen", type=int)
@click.option("--retired", is_flag=True, help="A retired employee (employee insurance only).")
@click.option("--assistance-category", type=click.Choice(ASSISTANCE_CATEGORIES), help="Default: none.")
@with_appcontext
def person_create(**opts: Any) -> None:
    """Register a person (ID number is stored encrypted)."""
    args = _load(PersonCreateSchema(), opts)

    def go() -> Any:
        with db.uow() as uow:
            p = registry.create_person(uow, **args)
            uow.commit()
            return p.psn_no

    _echo({"psn_no": _run(go)})


@person_cli.command("set-status")
@click.argument("psn_no")
@click.argument("status", type=click.Choice(["active", "suspended"]))
@with_appcontext
def person_status(psn_no: str, status: str) -> None:
    """Suspend or reactivate a person."""

    def go() -> None:
        with db.uow() as uow:
            registry.set_person_status(uow, psn_no, status)
            uow.commit()

    _run(go)
    _echo({"psn_no": psn_no, "status": status})


@person_cli.command("update")
@click.argument("psn_no")
@click.option("--status", type=click.Choice(["active", "suspended"]))
@click.option("--retired/--not-retired", default=None, help="Employee insurance only.")
@click.option("--assistance-category", type=click.Choice(ASSISTANCE_CATEGORIES))
@with_appcontext
def person_update(psn_no: str, **opts: Any) -> None:
    """Change a person's status, retirement or medical-assistance category (as PATCH /admin/persons)."""
    args = _load(PersonUpdateSchema(), opts)

    def go() -> Any:
        with db.uow() as uow:
            p = registry.update_person(uow, psn_no, **args)
            uow.commit()
            return {
                "psn_no": p.psn_no,
                "status": p.status,
                "retired": p.retired,
                "assistance_category": p.assistance_category,
            }

    _echo(_run(go))


@person_cli.command("add-filing")
@click.argument("psn_no")
@click.option("--region", required=True)
@click.option("--valid-from")
@click.option("--valid-until")
@with_appcontext
def person_filing(psn_no: str, **opts: Any) -> None:
    """Record a cross-region filing."""
    args = _load(FilingCreateSchema(), opts)

    def go() -> Any:
        with db.uow() as uow:
            f = registry.add_cross_region_filing(uow, psn_no, **args)
            uow.commit()
            return f.filing_no

    _echo({"filing_no": _run(go)})


@click.group("institution")
def institution_cli() -> None:
    """Designated institutions."""


@institution_cli.command("create")
@click.option("--name", required=True)
@click.option("--kind", type=click.Choice(["pharmacy", "hospital", "online_pharmacy"]), required=True)
@click.option("--region", required=True)
@click.option("--service", "services", multiple=True, required=True)
@click.option("--webhook-url")
@click.option("--level", type=click.Choice(INSTITUTION_LEVELS), help="Hospital level; default secondary.")
@with_appcontext
def institution_create(**opts: Any) -> None:
    """Designate an institution; prints the secret once."""
    opts["services"] = list(opts["services"])
    args = _load(InstitutionCreateSchema(), opts)

    def go() -> Any:
        with db.uow() as uow:
            _, creds = registry.create_institution(uow, **args)
            uow.commit()
            return creds

    _echo(vars(_run(go)))


@institution_cli.command("update")
@click.argument("org_id")
@click.option("--status", type=click.Choice(["active", "disabled"]))
@click.option("--service", "services", multiple=True, help="Replaces the designated services (repeat).")
@with_appcontext
def institution_update(org_id: str, status: str | None, services: tuple[str, ...]) -> None:
    """Disable or re-enable an institution, or replace its designated services."""
    args = _load(InstitutionUpdateSchema(), {"status": status, "services": list(services) or None})

    def go() -> Any:
        with db.uow() as uow:
            inst = registry.update_institution(uow, org_id, **args)
            uow.commit()
            return {"org_id": inst.org_id, "status": inst.status, "services": inst.services}

    _echo(_run(go))


@institution_cli.command("rotate-secret")
@click.argument("org_id")
@with_appcontext
def institution_rotate(org_id: str) -> None:
    """Replace an institution's key id and secret (the old ones stop working at once)."""

    def go() -> Any:
        with db.uow() as uow:
            creds = registry.rotate_institution_secret(uow, org_id)
            uow.commit()
            return creds

    _echo(vars(_run(go)))


@click.command("seed-demo")
@with_appcontext
def seed_demo_cmd() -> None:
    """Create the demo persons and institutions (idempotent) and print their credentials."""
    from yibao.config import INSTANCE_DIR
    from yibao.seed import seed_demo

    with db.uow() as uow:
        _echo(seed_demo(uow, INSTANCE_DIR / "demo-credentials.json"))


def register_cli(app: Flask) -> None:
    for group in (db_cli, maintenance_cli, person_cli, institution_cli, seed_demo_cmd):
        app.cli.add_command(group)


def main() -> None:
    """Console script entry point."""

    def factory() -> Flask:
        from yibao import create_app

        return create_app()

    cli = FlaskGroup(create_app=factory, add_default_commands=False)
    cli.main(args=sys.argv[1:], prog_name="yibao")
