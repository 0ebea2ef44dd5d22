"""benefits: benefit policies and the hospital split (pooled fund, serious illness, medical assistance).

split.py and policy.py are pure (the rules); policies.py stores the versioned policies; totals.py the
running totals per person and year; routes.py the operator API; cli.py `yibao benefits load`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the pure modules (split.py, policy.py) import no framework
    from flask import Flask


def register(app: Flask, api: Any) -> None:
    """Register the benefit-policy blueprint, the error codes and the CLI."""
    from . import errors, models  # noqa: F401  (codes; tables for the metadata)
    from .cli import benefits_cli
    from .routes import blp

    api.register_blueprint(blp)
    app.cli.add_command(benefits_cli)
