"""Per-person event streams in Redis: publish after a commit, read after a cursor with a bounded wait.

One Redis Stream per person (`yb:events:{person_id}`), trimmed to about MAXLEN entries and expiring
TTL seconds after the last event, so an idle person costs nothing. Entry ids are the cursor: a page
that reconnects with the last id it saw gets everything after it (unless trimmed away). No Flask here.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from yibao.redis_scripts import LuaScript

log = logging.getLogger(__name__)

KEY = "yb:events:{}"
MAXLEN = 100
TTL = 24 * 3600
KINDS = frozenset({"scan", "payment"})
CURSOR_RE = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")
START = "0-0"


# XADD (trimmed to about MAXLEN) and EXPIRE in one command: one round trip, and cheaper in redis-py
# than a two-command pipeline (one stream key: a single slot on a cluster too).
_PUBLISH = LuaScript(
    "local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',"
    " 'kind', ARGV[2], 'at', ARGV[3], 'data', ARGV[4])"
    " redis.call('EXPIRE', KEYS[1], ARGV[5]) return id"
)


def key(person_id: int | str) -> str:
    return KEY.format(int(person_id))


def publish(redis: Any, person_id: int | str, kind: str, payload: dict[str, Any]) -> str | None:
    """Append an event to the person's stream; return its id, or None when it could not be written.

    Never raises: the event is a courtesy to an open page, and a Redis failure must not fail the
    verification or payment that is already committed. The failure is logged (kind and person id,
    never the payload) and the caller continues.
    """
    try:
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}")
        fields = {
            "kind": kind,
            "at": f"{time.time():.3f}",
            "data": json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str),
        }
        args = (MAXLEN, fields["kind"], fields["at"], fields["data"], TTL)
        event_id = _PUBLISH(redis, [key(person_id)], args)
        return event_id.decode() if isinstance(event_id, bytes) else str(event_id)
    except Exception as exc:  # noqa: BLE001 - by contract: log and continue
        log.warning(
            "event not published", extra={"kind": kind, "person_id": str(person_id), "error": repr(exc)}
        )
        return None


@dataclass
class Batch:
    events: list[dict[str, Any]]
    next: str


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _event(entry_id: Any, fields: dict) -> dict[str, Any]:
    f = {_text(k): _text(v) for k, v in fields.items()}
    try:
        data = json.loads(f.get("data", "{}"))
    except ValueError:
        data = {}
    return {"id": _text(entry_id), "kind": f.get("kind", ""), "at": float(f.get("at", 0) or 0), "data": data}


def last_id(redis: Any, person_id: int | str) -> str:
    """The id of the person's newest event, or START when there is none."""
    rows = redis.xrevrange(key(person_id), count=1)
    return _text(rows[0][0]) if rows else START


def read(redis: Any, person_id: int | str, after: str | None, wait: float, *, count: int = MAXLEN) -> Batch:
    """Events after the cursor, at once when there are some, else waiting at most `wait` seconds.

    `after=None` means "from now": only events published after this call are returned. Redis errors
    propagate (the route answers 503 EVENTS_UNAVAILABLE; the page retries with backoff).
    """
    k = key(person_id)
    cursor = last_id(redis, person_id) if after is None else after
    block = int(wait * 1000) if wait > 0 else None  # BLOCK 0 would wait forever: never send it
    answer = redis.xread({k: cursor}, count=count, block=block)
    events: list[dict[str, Any]] = []
    for _stream, entries in answer or []:
        events.extend(_event(eid, fields) for eid, fields in entries)
    return Batch(events=events, next=events[-1]["id"] if events else cursor)
