"""Signed calls without a database read: a per-worker cache of institutions, checked against a
version token in Redis by the same script that burns the request's nonce (one round trip).

The invalidation rule (docs/architecture.md, "The hot-path rules"):

* Every institution has a version token in Redis, `yb:instv:{key_id}` (random; the key id is the hash
  tag, so the token and the nonces share a slot on a Redis Cluster). A worker caches an institution
  (decrypted secret, status, region, kind, services…) with the token it read BEFORE reading the row.
* A signed call whose signature matches the cached secret runs one script: it burns the nonce only
  if the token is still the cached one; a different or missing token means "reload": the request is
  authenticated from the database, exactly as without a cache (every refusal comes from that path).
* Any change of an institution through the ORM (admin API, CLI, seeding: registry.services) deletes
  its token after the commit (`after_commit` below). The next request in every worker then sees a
  missing token and reloads. A flushed or restarted Redis has no token either: reload, never a stale
  match (a token is random, not a counter that restarts at 1).
* If Redis cannot be told (down at the moment of the change) the institution calls fail closed while
  it is down, and a cached entry is never used longer than INSTITUTION_CACHE_SECONDS anyway.
* A change made behind the ORM's back (raw SQL) is not seen by cached workers until that age.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, has_app_context
from redis.cluster import RedisCluster
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from yibao.db import UnitOfWork
from yibao.redis_scripts import LuaScript
from yibao.redis_store import RedisUnavailable, guard
from yibao.registry import services as registry
from yibao.registry.models import Institution

from . import institutions as auth
from .institutions import NONCE_TTL, CurrentInstitution, SignedRequest

log = logging.getLogger(__name__)

MAX_ENTRIES = 10_000
TOKEN_TTL = 24 * 3600  # an expired token only costs each worker one reload
_CHANGED = "yb.institutions_changed"  # Session.info: key ids changed in this session, told after commit

# Burn the nonce (KEYS[2]) if the institution's token (KEYS[1]) is still ARGV[1] ('' = do not
# check), then SET NX each further key (KEYS[3..], ttl ARGV[3..]). {-1} stale, {0} nonce reused,
# else {1, fresh of KEYS[3], ...}.
_CLAIM = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1} end
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then return {0} end
local out = {1}
for i = 3, #KEYS do
  out[i - 1] = redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[i]) and 1 or 0
end
return out
"""
# The token, created when missing (a new random one).
_GET_OR_CREATE = """
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return ARGV[1]
"""


def version_key(key_id: str) -> str:
    return f"yb:instv:{{{key_id}}}"


class StaleInstitution(Exception):  # noqa: N818 - a signal, not an error
    """The cached institution changed after the request was authenticated from the cache: the
    request must be authenticated again from the database (nothing was burned)."""


@dataclass(frozen=True)
class _Entry:
    current: CurrentInstitution
    secret: bytes
    token: bytes
    loaded_at: float


class InstitutionCache:
    """Active institutions by key id, per worker process (and per app)."""

    def __init__(self, max_age: float, max_entries: int = MAX_ENTRIES) -> None:
        self.max_age = max_age
        self.max_entries = max_entries
        self._entries: dict[str, _Entry] = {}

    def get(self, key_id: str) -> _Entry | None:
        entry = self._entries.get(key_id)
        if entry is None:
            return None
        if time.monotonic() - entry.loaded_at > self.max_age:
            self._entries.pop(key_id, None)
            return None
        return entry

    def put(self, key_id: str, entry: _Entry) -> None:
        if self.max_age <= 0:
            return
        if key_id not in self._entries and len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries), key_id), None)  # the oldest inserted
        self._entries[key_id] = entry

    def drop(self, key_id: str) -> None:
        self._entries.pop(key_id, None)

    def __len__(self) -> int:
        return len(self._entries)


class NonceClaim:
    """The nonce of an authenticated request, burned in one Redis round trip together with the
    request's other single-use keys (`claim`), or alone (`settle`).

    Until it is burned the request is not fully authenticated: a cached institution is confirmed by
    the same script (StaleInstitution otherwise), and a reused nonce raises INSTITUTION_AUTH_FAILED.
    """

    def __init__(self, redis: Any, req: SignedRequest, token: bytes | None) -> None:
        self._redis = redis
        self._req = req
        self._token = token  # None: the institution was read from the database for this request
        self.burned = False

    def claim(self, key: str, ttl: int) -> bool:
        """Burn the nonce (if not yet) and SET NX `key` for `ttl` seconds: True when `key` was free.

        Raises StaleInstitution, INSTITUTION_AUTH_FAILED (NONCE_REUSED), RedisUnavailable.
        """
        if self.burned:
            with guard():
                return bool(self._redis.set(key, b"1", nx=True, ex=ttl))
        if isinstance(self._redis, RedisCluster):
            # Keys of one script must share a slot; a code's key lives in its subject's: two calls.
            self.settle()
            return self.claim(key, ttl)
        return self._run((key,), (ttl,))[0]

    def settle(self) -> None:
        """Burn the nonce now if nothing burned it yet (before any write, and before answering)."""
        if not self.burned:
            self._run((), ())

    def _run(self, keys: Sequence[str], ttls: Sequence[int]) -> list[bool]:
        req = self._req
        token = b"" if self._token is None else self._token
        with guard():
            out = _CLAIM_SCRIPT(
                self._redis, [version_key(req.key_id), req.nonce_key, *keys], [token, NONCE_TTL, *ttls]
            )
        status = int(out[0])
        if status == -1:
            raise StaleInstitution(req.key_id)
        if status == 0:
            raise auth.nonce_reused(req)
        self.burned = True
        return [bool(int(x)) for x in out[1:]]


_CLAIM_SCRIPT = LuaScript(_CLAIM)
_TOKEN_SCRIPT = LuaScript(_GET_OR_CREATE)


class Authenticator:
    """Signed calls of one app: the cache when it is current, the database otherwise."""

    def __init__(self, cache: InstitutionCache, uow_factory: Callable[[], UnitOfWork]) -> None:
        self.cache = cache
        self._uow = uow_factory

    def authenticate(
        self, redis: Any, req: SignedRequest, *, debug: bool, defer: bool, fresh: bool = False
    ) -> tuple[CurrentInstitution, NonceClaim]:
        """The institution of a correctly signed request and its nonce claim. Unless `defer`, the
        nonce is burned here; with `defer` the caller burns it (NonceClaim.claim / settle) and
        handles StaleInstitution by calling again with `fresh` (the database, not the cache).

        Raises: as yibao.auth.institutions.authenticate.
        """
        entry = None if fresh else self.cache.get(req.key_id)
        if entry is not None and req.signed_with(entry.secret):
            claim = NonceClaim(redis, req, entry.token)
            if defer:
                return entry.current, claim
            try:
                claim.settle()
                return entry.current, claim
            except StaleInstitution:
                pass
        # Not cached, not current, or refused with the cached secret: the database decides.
        self.cache.drop(req.key_id)
        current, claim = self._load(redis, req, debug=debug)
        if not defer:
            claim.settle()
        return current, claim

    def _load(self, redis: Any, req: SignedRequest, *, debug: bool) -> tuple[CurrentInstitution, NonceClaim]:
        # The token first, then the row: a change committed after this read deletes the token.
        token: bytes | None
        try:
            with guard():
                token = _TOKEN_SCRIPT(redis, [version_key(req.key_id)], [secrets.token_hex(16), TOKEN_TTL])
        except RedisUnavailable:
            token = None  # not cached; the nonce burn below fails closed after the checks
        with self._uow() as uow:
            row = registry.institution_by_key_id(uow, req.key_id)
        current = auth.checked_institution(row, req, debug=debug)
        if token is not None:
            secret = registry.institution_secret(row)
            self.cache.put(req.key_id, _Entry(current, secret, token, time.monotonic()))
        return current, NonceClaim(redis, req, None)


# ---------------------------------------------------------------- invalidation


def _on_institution_update(_mapper: Any, _conn: Any, target: Institution) -> None:
    """Every ORM update of an institution: remember its key ids (before and after) for after_commit."""
    session = inspect(target).session
    if session is None:  # pragma: no cover - a flush always has its session
        return
    if not has_app_context():
        # Outside the app nothing could tell the workers' caches: refuse rather than leave them stale.
        raise RuntimeError("institutions change only inside the application (caches must be told)")
    history = inspect(target).attrs.key_id.history
    keys = session.info.setdefault(_CHANGED, set())
    keys.update(k for k in (*history.deleted, target.key_id) if k)


def _after_commit(session: Session) -> None:
    keys = session.info.pop(_CHANGED, None)
    if not keys:
        return
    invalidate(current_app._get_current_object() if has_app_context() else None, keys)  # type: ignore[attr-defined]


def invalidate(app: Flask | None, key_ids: Sequence[str] | set[str]) -> None:
    """Delete the version tokens of these key ids: every worker reloads them on their next call.

    A Redis fault is logged, not raised (the change is committed; calls fail closed while Redis is
    down, and no entry outlives INSTITUTION_CACHE_SECONDS).
    """
    if app is not None:
        cache = app.extensions.get("yibao.institutions")
        for key_id in key_ids:
            if cache is not None:
                cache.cache.drop(key_id)
    client = app.extensions.get("yibao.redis") if app is not None else None
    try:
        if client is None:
            raise RedisUnavailable("no redis client")
        with guard():
            for key_id in key_ids:  # one key a call: on a cluster they live in different slots
                client.delete(version_key(key_id))
    except RedisUnavailable as exc:
        log.error(
            "institution cache not invalidated: cached workers may use the old row for up to"
            " INSTITUTION_CACHE_SECONDS",
            extra={"key_ids": sorted(key_ids), "error": str(exc)},
        )


_listening = False


def init_app(app: Flask, uow_factory: Callable[[], UnitOfWork]) -> None:
    global _listening
    cache = InstitutionCache(app.config["INSTITUTION_CACHE_SECONDS"])
    app.extensions["yibao.institutions"] = Authenticator(cache, uow_factory)
    if not _listening:
        event.listen(Institution, "after_update", _on_institution_update)
        event.listen(Session, "after_commit", _after_commit)
        _listening = True
