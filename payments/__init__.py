"""Payments: personal-account ledger, payment orders, refunds, traceability codes, webhooks."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask


def register(app: Flask, api: Any) -> None:
    """Register the payments blueprint, the person_created hook and the CLI commands."""
    # How long an in-progress Idempotency-Key blocks retries before a crashed claim may be taken over.
    app.config.setdefault(
        "PAYMENTS_IDEMPOTENCY_LOCK_SECONDS", float(os.environ.get("YIBAO_IDEMPOTENCY_LOCK_SECONDS", "30"))
    )
    from . import services  # noqa: F401  (registers error codes and the person_created hook)
    from .cli import payments_cli, webhooks_cli
    from .routes import blp

    api.register_blueprint(blp)
    app.cli.add_command(payments_cli)
    app.cli.add_command(webhooks_cli)
