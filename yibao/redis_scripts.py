"""Lua scripts for Redis, sent by their SHA1 (no Flask here: the events stream and the institution
cache both use it)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError


class LuaScript:
    """A Lua script sent by its SHA1 (EVALSHA: one command, the text is not resent), and whole when the
    server does not know it yet (a restarted or flushed server; EVAL also caches it again). Works on a
    single node and on a cluster alike (the keys of one call must share a slot there)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()  # noqa: S324 - Redis names scripts so

    def __call__(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return client.eval(self.text, len(keys), *keys, *args)
