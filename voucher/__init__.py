"""E-voucher: signing keys, short-lived QR tokens, verification at institutions, revocation, audit."""

from __future__ import annotations

from typing import Any

from flask import Flask


def register(app: Flask, api: Any) -> None:
    """Register the voucher blueprint(s) with the application."""
    from .routes import blp

    api.register_blueprint(blp)
