"""Operator commands: `yibao payments ...` and `yibao webhooks run`."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import click
from flask.cli import with_appcontext

from yibao.db import db
from yibao.errors import AppError
from yibao.registry import services as registry

from . import accounts, idempotency, orders, statements, webhooks


def _echo(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _fail(exc: AppError) -> click.ClickException:
    return click.ClickException(f"{exc.code}{': ' + exc.detail if exc.detail else ''}")


@click.group("payments")
def payments_cli() -> None:
    """Personal accounts, statements and housekeeping."""


@payments_cli.command("credit-contribution")
@click.argument("psn_no")
@click.option("--year", type=int, required=True)
@click.option("--amount-fen", type=click.IntRange(min=1), required=True)
@with_appcontext
def credit_contribution(psn_no: str, year: int, amount_fen: int) -> None:
    """Credit a yearly contribution (once per person and year; a rerun is a no-op)."""
    try:
        with db.uow() as uow:
            res = accounts.credit_contribution(uow, psn_no=psn_no, year=year, amount_fen=amount_fen)
            uow.commit()
    except AppError as exc:
        raise _fail(exc) from exc
    _echo(vars(res))


@payments_cli.command("statement")
@click.option("--org-id", required=True)
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]), required=True)
@with_appcontext
def statement(org_id: str, day: Any) -> None:
    """Print an institution's statement for one Beijing calendar day."""
    with db.uow(readonly=True) as uow:
        inst = registry.institution_by_org_id(uow, org_id)
        if inst is None:
            raise click.ClickException("INSTITUTION_NOT_FOUND")
        d: date = day.date()
        _echo({"org_id": org_id, **statements.statement(uow, institution_id=inst.id, day=d)})


@payments_cli.command("reconcile")
@with_appcontext
def reconcile() -> None:
    """Check the whole ledger; exits 1 when anything is off."""
    with db.uow(readonly=True) as uow:
        res = statements.reconcile(uow)
    _echo(res)
    if not res["ok"]:
        raise SystemExit(1)


@payments_cli.command("expire-orders")
@with_appcontext
def expire_orders() -> None:
    """Cancel orders left unpaid past the 30-minute pay window (run from cron, e.g. every few minutes)."""
    cancelled: list[str] = []
    while True:  # batches, each its own short transaction
        with db.uow() as uow:
            batch = orders.expire_unpaid_orders(uow)
            uow.commit()
        cancelled += batch
        if not batch:
            break
    _echo({"cancelled": len(cancelled), "pay_order_ids": cancelled})


@payments_cli.command("purge-idempotency-keys")
@with_appcontext
def purge() -> None:
    """Delete idempotency keys older than their 24 h retention."""
    with db.uow() as uow:
        n = idempotency.purge_expired(uow)
        uow.commit()
    _echo({"deleted": n})


@click.group("webhooks")
def webhooks_cli() -> None:
    """Merchant webhook delivery."""


@webhooks_cli.command("run")
@click.option("--once", is_flag=True, help="Deliver one batch of due events and exit.")
@click.option("--interval", type=float, default=1.0, show_default=True)
@with_appcontext
def run(once: bool, interval: float) -> None:
    """Deliver due webhook events (retries with exponential backoff; state in the database)."""
    webhooks.run(db.engine, once=once, interval=interval)
