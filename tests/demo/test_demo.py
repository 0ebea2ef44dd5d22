"""`make demo` as CI runs it: the four journeys against a real `make run` server (python -m yibao.serve),
twice (each run registers its own persons), in English and in Chinese, exit status 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.shell.serve_support import serve_env, serving

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
_CLIENT_VARS = {"ADMIN_TOKEN", "YB", "LANG", "LC_ALL", "LC_MESSAGES", "LANGUAGE"}


def play(base: str, instance: Path, *flags: str, **env: str) -> subprocess.CompletedProcess:
    """What `make demo` runs (the Makefile's recipe is checked below), in the reader's shell."""
    shell = {k: v for k, v in os.environ.items() if k not in _CLIENT_VARS}
    shell.update(YB=base, YIBAO_INSTANCE_DIR=str(instance), PYTHONIOENCODING="utf-8", **env)
    return subprocess.run(  # noqa: S603
        [sys.executable, *flags, "-m", "yibao_client.demo"],
        cwd=ROOT,
        env=shell,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_make_demo_runs_the_sdk_demo():
    recipe = subprocess.run(
        ["make", "-n", "demo"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    assert "-m yibao_client.demo" in recipe


def test_the_four_journeys_against_make_run(tmp_path):
    # No ADMIN_TOKEN: make run generates one and, in development, writes it where make demo finds it.
    env = serve_env(tmp_path)
    env["WEB_CONCURRENCY"] = "2"
    with serving(env) as served:
        instance = tmp_path / "instance"
        first = play(served.base, instance, LANG="en_US.UTF-8")
        assert first.returncode == 0, first.stdout + first.stderr
        out = first.stdout
        for line in (
            "(a) A pharmacy scan and counter sale",
            "(b) An online OTC order with a refund",
            "(c) A parent shows a child's code at a hospital",
            "(d) A son pays for his mother through family mutual aid",
            "scans it, business type 02121",
            "scans it, business type 01301",
            "refund 25.90 yuan",
            "approves on her own phone: active",
            "total 15.00, personal account 3.00, mutual aid 7.00, cash 5.00 yuan",
            "All four journeys ran as expected.",
        ):
            assert line in out, out
        assert "YB1:" in out and "█" in out  # the code, drawn as a QR (qrcode is installed with the service)

        again = play(served.base, instance, LC_ALL="zh_CN.UTF-8")  # new persons: it can run again
        assert again.returncode == 0, again.stdout + again.stderr
        assert "(d) 儿子通过家庭共济为母亲付款" in again.stdout
        assert "四个场景全部按预期完成。" in again.stdout

        wrong = play(served.base, instance, ADMIN_TOKEN="not-the-operator-token", LANG="C")
        assert wrong.returncode == 1 and "UNEXPECTED" in wrong.stdout and "ADMIN_AUTH_FAILED" in wrong.stdout


def test_no_service_is_said_plainly_with_the_standard_library_only(tmp_path):
    # -S: no site-packages, so the demo itself imports nothing but the standard library and the SDK.
    done = play("http://127.0.0.1:9", tmp_path, "-S", ADMIN_TOKEN="x", LANG="en_US.UTF-8")
    assert done.returncode == 2 and "make run" in done.stdout and "Traceback" not in done.stderr
