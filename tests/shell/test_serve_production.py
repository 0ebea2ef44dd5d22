"""Issue 10 item 2: the start command in production seeds nothing, prints no secret, and refuses to
start without an explicit SECRET_KEY and ADMIN_TOKEN, nor without a configured Redis (one line on stderr,
non-zero exit)."""

from __future__ import annotations

import json
import sqlite3
import urllib.request

import pytest

from yibao.seed import DEMO_INSTITUTIONS, DEMO_PERSONS

from .serve_support import run_to_exit, serve_env, serving

pytestmark = pytest.mark.slow

ADMIN = "prod-admin-token-7f3a9c0e5d1b"
SECRET = "prod-secret-key-1c2d3e4f5a6b7c8d9e0f"


def _rows(db_path, table: str) -> int:
    with sqlite3.connect(db_path) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608


def _assert_no_demo_and_no_secret(text: str, *secrets: str) -> None:
    for s in secrets:
        assert s not in text
    for p in DEMO_PERSONS:
        assert p["id_number"] not in text and p["name"] not in text
    for i in DEMO_INSTITUTIONS:
        assert i["name"] not in text
    assert "ADMIN_TOKEN=" not in text
    assert "Demo credentials" not in text
    assert '"secret"' not in text


def test_production_starts_without_seeding_or_printing_secrets(tmp_path, redis_url):
    db = tmp_path / "prod.sqlite3"
    env = serve_env(
        tmp_path,
        YIBAO_ENV="production",
        ADMIN_TOKEN=ADMIN,
        SECRET_KEY=SECRET,
        REDIS_URL=redis_url,
        DATABASE_URL=f"sqlite:///{db}",
        YIBAO_SEED_DEMO="1",  # asking for demo data does not get it in production
    )
    with serving(env) as served:
        req = urllib.request.Request(
            served.base + "/api/v1/admin/persons", headers={"Authorization": f"Bearer {ADMIN}"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - local test server
            assert json.loads(resp.read())["items"] == []
        assert f"API docs (Swagger UI): {served.base}/api/v1/docs" in served.output
    _assert_no_demo_and_no_secret(served.output, ADMIN, SECRET)
    assert _rows(db, "persons") == 0
    assert _rows(db, "institutions") == 0
    assert not (tmp_path / "instance" / "demo-credentials.json").exists()


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ADMIN_TOKEN", "REDIS_URL"])
def test_production_refuses_to_start_without_explicit_secrets(tmp_path, missing, redis_url):
    given = {"SECRET_KEY": SECRET, "ADMIN_TOKEN": ADMIN, "REDIS_URL": redis_url}
    del given[missing]
    db = tmp_path / "prod.sqlite3"
    env = serve_env(tmp_path, YIBAO_ENV="production", DATABASE_URL=f"sqlite:///{db}", **given)
    done = run_to_exit(env)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # one line, no traceback
    assert missing in lines[0] and "production" in lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    _assert_no_demo_and_no_secret(done.stdout + done.stderr, *given.values())
    assert not db.exists()  # refused before touching the database


def test_production_without_redis_exits_2_and_starts_no_valkey(tmp_path):
    """Neither REDIS_URL nor REDIS_CLUSTER_URL: one line, exit status 2, before any Valkey or database."""
    db = tmp_path / "prod.sqlite3"
    env = serve_env(
        tmp_path, YIBAO_ENV="production", SECRET_KEY=SECRET, ADMIN_TOKEN=ADMIN, DATABASE_URL=f"sqlite:///{db}"
    )
    done = run_to_exit(env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "yibao: cannot start: REDIS_URL or REDIS_CLUSTER_URL must be set when YIBAO_ENV=production"
        " (no embedded Valkey in production)"
    )
    assert "valkey started" not in done.stdout.lower() and not db.exists()


def test_production_refuses_to_start_with_empty_admin_token(tmp_path):
    env = serve_env(tmp_path, YIBAO_ENV="production", SECRET_KEY=SECRET, ADMIN_TOKEN="")
    done = run_to_exit(env)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "ADMIN_TOKEN" in done.stderr


def test_development_with_seed_demo_off_seeds_and_prints_no_demo(tmp_path):
    db = tmp_path / "dev.sqlite3"
    env = serve_env(tmp_path, YIBAO_SEED_DEMO="0", DATABASE_URL=f"sqlite:///{db}")
    with serving(env) as served:
        pass
    text = served.output
    assert "ADMIN_TOKEN=" in text  # development still generates and shows an operator token
    for p in DEMO_PERSONS:
        assert p["id_number"] not in text
    assert "Demo credentials" not in text and '"secret"' not in text
    assert _rows(db, "persons") == 0
    assert _rows(db, "institutions") == 0


def test_development_never_echoes_an_operator_chosen_admin_token(tmp_path):
    env = serve_env(tmp_path, ADMIN_TOKEN=ADMIN, YIBAO_SEED_DEMO="0")
    with serving(env) as served:
        pass
    assert ADMIN not in served.output
