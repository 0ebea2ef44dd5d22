"""Payments: personal-account ledger, payment orders, refunds, traceability codes, webhooks."""

from __future__ import annotations

from typing import Any

from flask import Flask


def register(app: Flask, api: Any) -> None:
    """Register the payments blueprint(s) with the application."""
    from .routes import blp

    api.register_blueprint(blp)
