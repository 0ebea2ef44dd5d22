"""`yibao voucher-keys ...` (generate, rotate, list, retire signing keys) and `yibao vouchers ...`."""

from __future__ import annotations

import json
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from yibao.db import db

from . import housekeeping, keys
from .claims import LEEWAY, MAX_TTL


def _echo(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _ring() -> keys.KeyRing:
    return current_app.extensions["yibao.voucher.keyring"]


@click.group("voucher-keys")
def keys_cli() -> None:
    """Voucher signing keys (Ed25519, encrypted at rest)."""


@keys_cli.command("generate")
@with_appcontext
def generate() -> None:
    """Create the first signing key if none is live (idempotent)."""
    created = keys.ensure_key(lambda readonly: db.uow(readonly=readonly))
    _ring().invalidate()
    with db.uow(readonly=True) as uow:
        _echo({"created": created, "keys": keys.list_keys(uow)})


@keys_cli.command("rotate")
@with_appcontext
def rotate() -> None:
    """New key signs at once; old keys verify until their tokens expired; expired ones retire."""
    with db.uow() as uow:
        retired = keys.retire_expired(uow)
        new, superseded = keys.rotate(uow, max_token_lifetime=MAX_TTL, leeway=LEEWAY)
        uow.commit()
        kid = new.kid
    _ring().invalidate()
    with db.uow(readonly=True) as uow:
        _echo({"signing": kid, "superseded": superseded, "retired": retired, "keys": keys.list_keys(uow)})


@keys_cli.command("retire")
@click.option("--kid", help="Withdraw this key now (compromise): its tokens stop verifying at once.")
@with_appcontext
def retire(kid: str | None) -> None:
    """Retire keys past their verification window, or one key immediately with --kid."""
    with db.uow() as uow:
        if kid:
            if not keys.retire_now(uow, kid):
                raise click.ClickException(f"no live key {kid}")
            retired = [kid]
        else:
            retired = keys.retire_expired(uow)
        uow.commit()
    _ring().invalidate()
    _echo({"retired": retired})


@keys_cli.command("list")
@with_appcontext
def list_cmd() -> None:
    """Show every key with its status (signing, verifying, retired)."""
    with db.uow(readonly=True) as uow:
        _echo(keys.list_keys(uow))


@click.group("vouchers")
def vouchers_cli() -> None:
    """Voucher housekeeping."""


@vouchers_cli.command("purge-expired")
@with_appcontext
def purge_expired() -> None:
    """Delete expired single-use records and ec_tokens (run from cron, e.g. hourly)."""
    with db.uow() as uow:
        counts = housekeeping.purge_expired(uow)
        uow.commit()
    _echo({"deleted": counts})
