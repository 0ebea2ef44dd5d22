"""Payments: personal-account ledger, payment orders, refunds, traceability codes, webhooks."""

from __future__ import annotations

from typing import Any

from flask import Flask


def register(app: Flask, api: Any) -> None:
    """Register the payments blueprint, the person_created hook and the CLI commands."""
    from . import accounts, errors  # noqa: F401  (error codes; the person_created hook)
    from .cli import payments_cli, webhooks_cli
    from .routes import blp

    api.register_blueprint(blp)
    app.cli.add_command(payments_cli)
    app.cli.add_command(webhooks_cli)
