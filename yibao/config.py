"""Configuration from environment variables, with defaults that run on one laptop."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

INSTANCE_DIR = Path(os.environ.get("YIBAO_INSTANCE_DIR", Path.cwd() / "instance"))


def _instance_secret(name: str) -> str:
    """Read a development secret from the instance folder, creating it on first use.

    Every gunicorn worker must share the same keys, so a random per-process value
    would not do; production sets the variables explicitly instead.
    """
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    path = INSTANCE_DIR / name
    if not path.exists():
        # A private temporary name: workers starting together must not share (and unlink) one.
        tmp = path.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        tmp.write_text(secrets.token_urlsafe(48))
        os.chmod(tmp, 0o600)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # atomic: the first writer wins, others read its value
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()


def normalize_database_url(url: str) -> str:
    """Select the psycopg 3 driver for plain postgresql:// URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Config:
    """Settings read once at app creation; tests pass overrides to create_app."""

    def __init__(self) -> None:
        env = os.environ
        self.YIBAO_ENV = env.get("YIBAO_ENV", "development")
        production = self.YIBAO_ENV == "production"
        if production and not env.get("SECRET_KEY"):
            raise RuntimeError("SECRET_KEY must be set when YIBAO_ENV=production")
        if production and not env.get("ADMIN_TOKEN"):
            raise RuntimeError("ADMIN_TOKEN must be set when YIBAO_ENV=production")
        self.SECRET_KEY = env.get("SECRET_KEY") or _instance_secret("secret_key")
        self.DATABASE_URL = normalize_database_url(
            env.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'yibao.sqlite3'}"
        )
        self.REDIS_URL = env.get("REDIS_URL") or None
        self.REDIS_CLUSTER_URL = env.get("REDIS_CLUSTER_URL") or None
        self.ADMIN_TOKEN = env.get("ADMIN_TOKEN") or None
        self.SANDBOX_IDENTITY_ENABLED = _bool(env.get("YIBAO_SANDBOX_IDENTITY"), default=not production)
        # 'package.module:factory' of a real face-verification provider (yibao.identity.providers).
        self.IDENTITY_PROVIDER = env.get("IDENTITY_PROVIDER") or None
        if production and self.IDENTITY_PROVIDER == "sandbox":
            raise RuntimeError("IDENTITY_PROVIDER=sandbox is for development, not YIBAO_ENV=production")
        self.MAX_CONTENT_LENGTH = int(env.get("YIBAO_MAX_BODY_BYTES", 128 * 1024))
        self.ACCESS_TOKEN_TTL = int(env.get("YIBAO_ACCESS_TOKEN_TTL", 15 * 60))
        self.REFRESH_TOKEN_TTL = int(env.get("YIBAO_REFRESH_TOKEN_TTL", 30 * 24 * 3600))
        self.IDENTITY_PROOF_TTL = 5 * 60
        self.SIGNATURE_WINDOW = 300
        # How long a worker may use a cached institution at most; changes made through the registry
        # reach every worker at once anyway (yibao/auth/institution_cache.py). 0: no cache.
        self.INSTITUTION_CACHE_SECONDS = float(env.get("YIBAO_INSTITUTION_CACHE_SECONDS", 60))
        # A refused signature shows the canonical string the server signed: development only.
        self.SIGNATURE_DEBUG = not production and _bool(env.get("YIBAO_SIGNATURE_DEBUG"), default=True)
        self.REDIS_SOCKET_TIMEOUT = float(env.get("YIBAO_REDIS_TIMEOUT", 1.0))
        # Demo persons and institutions seeded by the start command: development only, never production.
        self.SEED_DEMO = not production and _bool(env.get("YIBAO_SEED_DEMO"), default=True)
        # How long an in-progress Idempotency-Key blocks retries before a crashed claim may be taken over.
        self.PAYMENTS_IDEMPOTENCY_LOCK_SECONDS = float(env.get("YIBAO_IDEMPOTENCY_LOCK_SECONDS", "30"))
        # Lifetime of a signed voucher code, seconds (1..300; checked by the voucher package).
        self.VOUCHER_TTL = int(env.get("YIBAO_VOUCHER_TTL") or 60)
        # How long the usage audit (every scan, accepted or refused) is kept before
        # `yibao maintenance prune` may remove it, days (>= 1; see docs/configuration.md).
        self.USAGE_RETENTION_DAYS = _positive_int("YIBAO_USAGE_RETENTION_DAYS", 1095)
        self.LOG_LEVEL = env.get("LOG_LEVEL", "INFO")
        self.JSON_LOGS = _bool(env.get("YIBAO_JSON_LOGS"), default=True)
        # flask-smorest / OpenAPI
        self.API_TITLE = "yibao"
        self.API_VERSION = "v1"
        self.OPENAPI_VERSION = "3.0.3"
        self.OPENAPI_URL_PREFIX = "/api/v1"
        self.OPENAPI_JSON_PATH = "openapi.json"
        # Origins (scheme://host[:port], comma-separated) allowed to call the API from a browser; none
        # by default: the service's own pages are same-origin (yibao/cors.py).
        self.CORS_ORIGINS = _origins(env.get("YIBAO_CORS_ORIGINS", ""))
        # The docs page (Swagger UI from a packaged copy, signing "Try it out"): yibao/docs_page.py.
        self.YB_DOCS_PATH = "/docs"
        self.API_SPEC_OPTIONS = {"info": {"description": "Medical-insurance e-voucher and payment API"}}


def _origins(value: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
    for o in origins:
        scheme, sep, host = o.partition("://")
        if scheme not in {"http", "https"} or not sep or not host or "/" in host or o == "*":
            raise RuntimeError(f"YIBAO_CORS_ORIGINS: {o!r} is not an origin like https://app.example.cn")
    return origins


def _positive_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    if not value.strip().isdigit() or int(value) < 1:
        raise RuntimeError(f"{name}: {value!r} is not a whole number of at least 1")
    return int(value)


def _bool(value: str | None, *, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def load(test_config: dict | None = None) -> dict:
    """Return the configuration mapping, with test overrides applied last."""
    cfg = {k: v for k, v in vars(Config()).items() if k.isupper()}
    if test_config:
        cfg.update(test_config)
    if cfg.get("DATABASE_URL"):
        cfg["DATABASE_URL"] = normalize_database_url(cfg["DATABASE_URL"])
    # Checked on the final settings (an app built with REDIS_URL given is fine): an embedded Valkey's
    # single-use and replay state would die with its process and is not shared between hosts.
    if cfg["YIBAO_ENV"] == "production" and not (cfg.get("REDIS_URL") or cfg.get("REDIS_CLUSTER_URL")):
        raise RuntimeError(
            "REDIS_URL or REDIS_CLUSTER_URL must be set when YIBAO_ENV=production"
            " (no embedded Valkey in production)"
        )
    return cfg


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    workers: int
    access_log: bool
    threads: int = 8


def server_settings(environ: Mapping[str, str] = os.environ) -> ServerSettings:
    """The HTTP server's own settings for `make run` (gunicorn's, not the application's)."""
    return ServerSettings(
        host=environ.get("HOST", "127.0.0.1"),
        port=int(environ.get("PORT", "8000")),
        workers=int(environ.get("WEB_CONCURRENCY", "4")),
        access_log=bool(environ.get("YIBAO_GUNICORN_ACCESS_LOG")),
        threads=int(environ.get("WEB_THREADS", "8")),
    )
