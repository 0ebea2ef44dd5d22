"""GET /api/v1/events: long polling with a cursor over the caller's event stream."""

from __future__ import annotations

from typing import Any

from flask import current_app

from yibao.api import Blueprint, current_user
from yibao.errors import AppError
from yibao.redis_store import connect

from . import stream
from .schemas import EventsQuery, LiveEventsPageSchema

blp = Blueprint("events", __name__, url_prefix="/api/v1", description="Live updates for the app page")


def _blocking_client() -> Any:
    """A Redis client of its own whose socket timeout outlasts the longest wait."""
    app = current_app
    client = app.extensions.get("yibao.events.redis")
    if client is None:
        cfg = app.config
        timeout = float(cfg["EVENTS_WAIT_MAX"]) + 5
        client = connect(cfg.get("REDIS_URL"), cfg.get("REDIS_CLUSTER_URL"), timeout)
        app.extensions["yibao.events.redis"] = client
    return client


@blp.route("/events", methods=["GET"])
@blp.user
@blp.arguments(EventsQuery, location="query", as_kwargs=True)
@blp.response(200, LiveEventsPageSchema)
@blp.problems("EVENTS_UNAVAILABLE")
def events(after: str | None, wait: int) -> Any:
    """Your events after `after`: at once when there are some, else held open at most `wait` seconds.

    Loop: send the answer's `next` as the following `after`; a reconnection with the last cursor
    loses nothing (the stream keeps about the last 100 events for 24 hours). Scan results and
    payments of your codes (and of codes you showed for a family member) arrive here.
    """
    wait = min(wait, int(current_app.config["EVENTS_WAIT_MAX"]))
    try:
        batch = stream.read(_blocking_client(), current_user().person_id, after, wait)
    except Exception as exc:
        raise AppError("EVENTS_UNAVAILABLE") from exc
    return {"events": batch.events, "next": batch.next}
