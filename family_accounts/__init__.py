"""Family accounts: bindings with consent, delegated actions, mutual-aid filings."""

from __future__ import annotations

from typing import Any

from flask import Flask


def register(app: Flask, api: Any) -> None:
    """Register the family blueprint and the sweep command with the application."""
    from .cli import sweep_cli
    from .routes import blp

    api.register_blueprint(blp)
    app.cli.add_command(sweep_cli)
