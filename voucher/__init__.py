"""E-voucher: signing keys, short-lived QR tokens, verification at institutions, revocation, audit.

Modules: claims (what a code must be), issuance, verification, subjects (sub, revocation
watermark, registry hooks), ec_tokens (the interface payments calls), usage (audit pages),
housekeeping, errors (the code table), queries (prebuilt statements), keys, token, qr, routes.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from . import errors as _errors  # noqa: F401  the code table, registered on first import of the package


def register(app: Flask, api: Any) -> None:
    """Register the voucher blueprints, hooks, CLI and settings with the application."""
    from yibao import hooks, partitions
    from yibao.db import db

    from . import housekeeping, subjects
    from .claims import MAX_TTL
    from .cli import keys_cli, vouchers_cli
    from .keys import KeyRing
    from .routes import blp, jwks_blp

    if not 1 <= app.config["VOUCHER_TTL"] <= MAX_TTL:
        raise RuntimeError(f"YIBAO_VOUCHER_TTL must be between 1 and {MAX_TTL} seconds")
    app.extensions["yibao.voucher.keyring"] = KeyRing(lambda readonly: db.uow(readonly=readonly))

    hooks.on("person_created")(subjects.on_person_created)
    hooks.on("person_suspended")(subjects.on_person_suspended)
    hooks.on("person_activated")(subjects.on_person_activated)

    partitions.register(app, *housekeeping.RETAINED)
    api.register_blueprint(blp)
    api.register_blueprint(jwks_blp)
    app.cli.add_command(keys_cli)
    app.cli.add_command(vouchers_cli)
