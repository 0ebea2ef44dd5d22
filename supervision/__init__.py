"""Fund supervision at the point of sale (智能监控): operators' rules, their evaluation at order, pay and
verification (checks.py, the interface payments and voucher call), and the alerts they raise."""

from __future__ import annotations

from typing import Any

from flask import Flask


def register(app: Flask, api: Any) -> None:
    """Register the supervision blueprints and the `yibao supervision` commands."""
    from . import errors  # noqa: F401  (registers the error codes)
    from .cli import supervision_cli
    from .routes import admin_blp, user_blp
    from .rule_cache import EXTENSION, RuleCache

    app.extensions[EXTENSION] = RuleCache()  # this app's (worker's) enabled rules

    api.register_blueprint(admin_blp)
    api.register_blueprint(user_blp)
    app.cli.add_command(supervision_cli)
