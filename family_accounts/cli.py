"""`yibao family-sweep`: record due expiries and comings of age (run it from cron, e.g. hourly)."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from yibao.db import db

from . import lifecycle, mutual_aid


@click.command("family-sweep")
@with_appcontext
def sweep_cli() -> None:
    """Expire overdue pending bindings and mutual-aid filings, move wards who turned 17 to pending.

    Prints {"moved": {status: n}}: how many bindings and filings moved to each status.
    """
    with db.uow() as uow:
        moved = lifecycle.sweep(uow)
        for status, n in mutual_aid.sweep(uow).items():
            moved[status] = moved.get(status, 0) + n
        uow.commit()
    click.echo(json.dumps({"moved": moved}))
