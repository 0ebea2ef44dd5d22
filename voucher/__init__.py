"""E-voucher: signing keys, short-lived QR tokens, verification at institutions, revocation, audit."""

from __future__ import annotations

from typing import Any

from flask import Flask


def register(app: Flask, api: Any) -> None:
    """Register the voucher blueprints, hooks, CLI and settings with the application."""
    from yibao import hooks
    from yibao.db import db

    from . import services
    from .cli import keys_cli, vouchers_cli
    from .keys import KeyRing
    from .routes import blp, jwks_blp

    ttl = app.config["VOUCHER_TTL"]
    if not 1 <= ttl <= services.MAX_TTL:
        raise RuntimeError(f"YIBAO_VOUCHER_TTL must be between 1 and {services.MAX_TTL} seconds")
    app.config["VOUCHER_TTL"] = ttl
    app.extensions["yibao.voucher.keyring"] = KeyRing(lambda readonly: db.uow(readonly=readonly))

    hooks.on("person_created")(services.on_person_created)
    hooks.on("person_suspended")(services.on_person_suspended)
    hooks.on("person_activated")(services.on_person_activated)

    api.register_blueprint(blp)
    api.register_blueprint(jwks_blp)
    app.cli.add_command(keys_cli)
    app.cli.add_command(vouchers_cli)
