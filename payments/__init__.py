"""Payments: personal-account ledger, payment orders, refunds, traceability codes, webhooks."""

from __future__ import annotations

from typing import Any

from flask import Flask


def register(app: Flask, api: Any) -> None:
    """Register the payments blueprint, the person_created hook and the CLI commands."""
    from yibao import partitions

    # error codes; the person_created hook; the fund statement routes (on blp); the growing tables
    from . import accounts, errors, fund_routes, retention  # noqa: F401
    from .cli import payments_cli, webhooks_cli
    from .routes import blp

    partitions.register(app, *retention.RETAINED)
    api.register_blueprint(blp)
    app.cli.add_command(payments_cli)
    app.cli.add_command(webhooks_cli)
