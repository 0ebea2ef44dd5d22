"""Configuration: environment parsing and the shared development secrets of the instance folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from yibao import config

ROOT = Path(__file__).resolve().parents[2]


def test_normalize_database_url():
    assert config.normalize_database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert config.normalize_database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert config.normalize_database_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.parametrize(
    "value,default,expected",
    [
        (None, True, True),
        ("", False, False),
        ("1", False, True),
        ("yes", False, True),
        ("off", True, False),
        ("0", True, False),
        (" TRUE ", False, True),
    ],
)
def test_bool_env(value, default, expected):
    assert config._bool(value, default=default) is expected


def test_env_settings(monkeypatch):
    monkeypatch.setenv("YIBAO_ENV", "development")
    monkeypatch.setenv("ADMIN_TOKEN", "tok")
    monkeypatch.setenv("YIBAO_SANDBOX_IDENTITY", "0")
    monkeypatch.setenv("YIBAO_MAX_BODY_BYTES", "1000")
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@y/z")
    cfg = config.load({})
    assert cfg["ADMIN_TOKEN"] == "tok" and cfg["SANDBOX_IDENTITY_ENABLED"] is False
    assert cfg["MAX_CONTENT_LENGTH"] == 1000 and cfg["DATABASE_URL"].startswith("postgresql+psycopg://")
    monkeypatch.setenv("ADMIN_TOKEN", "")
    assert config.load({})["ADMIN_TOKEN"] is None  # empty means unset: fail closed


class _FaceCheck:
    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg


def make_face_check(cfg: dict) -> _FaceCheck:
    return _FaceCheck(cfg)


def test_identity_provider_from_the_environment(monkeypatch):
    from yibao.identity.providers import load_provider

    monkeypatch.setenv("IDENTITY_PROVIDER", "tests.shell.test_config:make_face_check")
    cfg = config.load({})
    assert cfg["IDENTITY_PROVIDER"] == "tests.shell.test_config:make_face_check"
    assert isinstance(load_provider(cfg), _FaceCheck)
    monkeypatch.setenv("YIBAO_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "s" * 48)
    monkeypatch.setenv("ADMIN_TOKEN", "a" * 32)
    monkeypatch.setenv("IDENTITY_PROVIDER", "sandbox")
    with pytest.raises(RuntimeError, match="IDENTITY_PROVIDER"):
        config.load({})


@pytest.mark.slow
def test_instance_secret_shared_by_concurrent_processes(tmp_path):
    """Workers starting together on a fresh instance folder all end up with one secret."""
    env = {**os.environ, "YIBAO_INSTANCE_DIR": str(tmp_path)}
    code = "from yibao.config import _instance_secret; print(_instance_secret('secret_key'))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(outs)) == 1 and len(outs[0]) >= 40
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temporary files left
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_production_needs_an_explicit_admin_token_and_never_seeds(monkeypatch):
    monkeypatch.setenv("YIBAO_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "s" * 48)
    monkeypatch.delenv("ADMIN_TOKEN", raising=False)
    with pytest.raises(RuntimeError, match="ADMIN_TOKEN must be set"):
        config.load({})
    monkeypatch.setenv("ADMIN_TOKEN", "a" * 32)
    monkeypatch.setenv("REDIS_URL", "redis://10.0.0.5:6379/0")  # production needs a configured Redis
    monkeypatch.setenv("YIBAO_SEED_DEMO", "1")
    assert config.load({})["SEED_DEMO"] is False


def test_demo_seeding_is_the_development_default_and_can_be_switched_off(monkeypatch):
    monkeypatch.delenv("YIBAO_ENV", raising=False)
    monkeypatch.delenv("YIBAO_SEED_DEMO", raising=False)
    assert config.load({})["SEED_DEMO"] is True
    monkeypatch.setenv("YIBAO_SEED_DEMO", "0")
    assert config.load({})["SEED_DEMO"] is False


def _production(monkeypatch: pytest.MonkeyPatch, **redis: str) -> None:
    monkeypatch.setenv("YIBAO_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "s" * 48)
    monkeypatch.setenv("ADMIN_TOKEN", "a" * 32)
    for name in ("REDIS_URL", "REDIS_CLUSTER_URL"):
        if name in redis:
            monkeypatch.setenv(name, redis[name])
        else:
            monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("redis", [{}, {"REDIS_URL": ""}, {"REDIS_CLUSTER_URL": ""}])
def test_production_needs_a_configured_redis(monkeypatch, redis):
    """No embedded Valkey in production: its single-use state would die with the process."""
    _production(monkeypatch, **redis)
    with pytest.raises(
        RuntimeError, match="^REDIS_URL or REDIS_CLUSTER_URL must be set when YIBAO_ENV=production"
    ):
        config.load({})


@pytest.mark.parametrize(
    "redis", [{"REDIS_URL": "redis://10.0.0.5:6379/0"}, {"REDIS_CLUSTER_URL": "redis://10.0.0.6:7000"}]
)
def test_production_takes_either_redis_setting(monkeypatch, redis):
    _production(monkeypatch, **redis)
    cfg = config.load({})
    assert (cfg["REDIS_URL"], cfg["REDIS_CLUSTER_URL"]) == (
        redis.get("REDIS_URL"),
        redis.get("REDIS_CLUSTER_URL"),
    )


def test_production_redis_may_come_from_the_app_config(monkeypatch):
    _production(monkeypatch)
    assert config.load({"REDIS_URL": "redis://10.0.0.5:6379/0"})["REDIS_URL"] == "redis://10.0.0.5:6379/0"


def test_development_without_redis_settings_leaves_the_embedded_default(monkeypatch):
    monkeypatch.delenv("YIBAO_ENV", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_CLUSTER_URL", raising=False)
    cfg = config.load({})
    assert cfg["REDIS_URL"] is None and cfg["REDIS_CLUSTER_URL"] is None  # redis_store starts a Valkey
