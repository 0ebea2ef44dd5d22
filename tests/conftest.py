"""Fixtures: a migrated database (SQLite file or PostgreSQL), a real Redis, the app and its clients.

With DATABASE_URL / REDIS_URL set, the suite runs against those servers; otherwise against a
SQLite file and an embedded Valkey server, the same defaults `make run` uses.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text

from yibao import create_app
from yibao.config import normalize_database_url
from yibao.migrate import upgrade
from yibao.redis_store import start_embedded_server

from .support import ADMIN_TOKEN, TEST_SECRET, Yb, reset_postgres


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"database: {'postgresql' if os.environ.get('DATABASE_URL') else 'sqlite'}; "
        f"redis: {'REDIS_URL' if os.environ.get('REDIS_URL') else 'embedded valkey'}"
    ]


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("REDIS_URL") or start_embedded_server()


@pytest.fixture(scope="session")
def is_postgres() -> bool:
    return bool(os.environ.get("DATABASE_URL"))


@pytest.fixture(scope="session")
def db_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Migrate once per session: a template SQLite file, or a fresh public schema on PostgreSQL."""
    url = os.environ.get("DATABASE_URL")
    if url:
        url = normalize_database_url(url)
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        upgrade(url)
        return url
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    upgrade(f"sqlite:///{path}")
    return str(path)


@pytest.fixture
def empty_url(tmp_path: Path, is_postgres: bool, db_template: str) -> Iterator[str]:
    """An unmigrated database for migration tests: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if not is_postgres:
        yield f"sqlite:///{tmp_path / 'migrate.sqlite3'}"
        return
    schema = "mig_" + secrets.token_hex(4)
    engine = create_engine(normalize_database_url(db_template))
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{db_template}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.fixture
def database_url(db_template: str, tmp_path: Path, is_postgres: bool) -> str:
    if is_postgres:
        reset_postgres(db_template)
        return db_template
    path = tmp_path / "yibao.sqlite3"
    shutil.copyfile(db_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def app_config(database_url: str, redis_url: str, tmp_path: Path) -> dict:
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    r.close()
    return {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "SECRET_KEY": TEST_SECRET,
        "SANDBOX_IDENTITY_ENABLED": True,
        "JSON_LOGS": False,
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def app(app_config: dict) -> Iterator:
    app = create_app(app_config)
    yield app
    app.extensions["yibao.db"]["engine"].dispose()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def runner(app):  # type: ignore[no-untyped-def]
    return app.test_cli_runner()


@pytest.fixture
def yb(client) -> Yb:  # type: ignore[no-untyped-def]
    return Yb(client)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator:
    """One headless Chromium for every browser test of the session (one Playwright driver per process)."""
    from .browser_support import CHROMIUM, CHROMIUM_ARGS, need_browser

    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
