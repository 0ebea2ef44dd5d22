"""Operator commands: `yibao benefits load FILE.json`."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask.cli import with_appcontext

from yibao.db import db
from yibao.errors import AppError
from yibao.registry.models import INSURANCE_TYPES
from yibao.registry.validators import is_valid_region

from . import policies


@click.group("benefits")
def benefits_cli() -> None:
    """Benefit policies."""


@benefits_cli.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def load(file: Path) -> None:
    """Load policies from FILE.json: one {region, insurance_type, year, policy} or a list of them.

    Each becomes the next version of its region, insurance type and year.
    """
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{file}: not JSON ({exc})") from exc
    entries = data if isinstance(data, list) else [data]
    out = []
    with db.uow() as uow:
        for i, entry in enumerate(entries):
            where = f"entry {i}" if isinstance(data, list) else str(file)
            if not isinstance(entry, dict) or set(entry) != {"region", "insurance_type", "year", "policy"}:
                raise click.ClickException(f"{where}: give exactly region, insurance_type, year, policy")
            region, itype, year = entry["region"], entry["insurance_type"], entry["year"]
            if not (isinstance(region, str) and is_valid_region(region)):
                raise click.ClickException(f"{where}: region: unknown administrative region code")
            if itype not in INSURANCE_TYPES:
                raise click.ClickException(f"{where}: insurance_type: employee or resident")
            if isinstance(year, bool) or not isinstance(year, int) or not 2000 <= year <= 2100:
                raise click.ClickException(f"{where}: year: a calendar year from 2000 to 2100")
            try:
                row = policies.put_policy(
                    uow, region=region, insurance_type=itype, year=year, document=entry["policy"]
                )
            except AppError as exc:
                raise click.ClickException(
                    f"{where}: {exc.code} {json.dumps(exc.extra, ensure_ascii=False)}"
                ) from exc
            out.append({"region": region, "insurance_type": itype, "year": year, "version": row.version})
        uow.commit()
    click.echo(json.dumps(out, ensure_ascii=False, indent=2))
