"""Push channel: per-person events (scan results, payments) for the open pages, by long polling.

`yibao.events.stream.publish(redis, person_id, kind, payload)` is what the domains call after their
commit; `GET /api/v1/events` is what the page polls. The package also registers the two pages that
consume the channel (yibao.pages: /app/ and /counter/); create_app registers both.
"""

from __future__ import annotations

from typing import Any

from flask import Flask


def register(app: Flask, api: Any) -> None:
    """Register the events endpoint and the pages (/app/, /counter/)."""
    from yibao import pages

    from . import errors  # noqa: F401 - registers the codes
    from .routes import blp

    app.config.setdefault("EVENTS_WAIT_MAX", 25)
    api.register_blueprint(blp)
    pages.init_app(app)
