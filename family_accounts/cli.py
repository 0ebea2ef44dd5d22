"""`yibao family-sweep`: record due expiries and comings of age (run it from cron, e.g. hourly)."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from yibao.db import db

from . import services


@click.command("family-sweep")
@with_appcontext
def sweep_cli() -> None:
    """Expire overdue pending bindings and move wards who turned 17 to pending, with audit events."""
    with db.uow() as uow:
        moved = services.sweep(uow)
        uow.commit()
    click.echo(json.dumps({"moved": moved}))
