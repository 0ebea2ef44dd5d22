"""The documentation's curl flows, run as written against a real `make run` server, so they cannot drift."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.docs import flows
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
ADMIN_TOKEN = "docs-admin-token-0123456789"
_SERVICE_VARS = {"DATABASE_URL", "REDIS_URL", "REDIS_CLUSTER_URL", "ADMIN_TOKEN", "SECRET_KEY", "PORT"}
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def documents() -> list[tuple[str, Path]]:
    """README.md, then docs/*.md in the order of the index docs/README.md: the order a reader runs them in."""
    index = (DOCS / "README.md").read_text()
    names = list(dict.fromkeys(m["target"].split("#")[0] for m in LINK.finditer(index)))
    ordered = [("README.md", ROOT / "README.md"), ("docs/README.md", DOCS / "README.md")]
    ordered += [(f"docs/{n}", DOCS / n) for n in names if n.endswith(".md") and "/" not in n]
    return ordered


def test_index_lists_every_document_and_links_stay_inside():
    listed = {name for name, _ in documents()}
    on_disk = {f"docs/{p.name}" for p in DOCS.glob("*.md")}
    assert on_disk <= listed, f"not in docs/README.md: {sorted(on_disk - listed)}"
    for name, path in documents():
        assert path.exists(), name
        for m in LINK.finditer(path.read_text()):
            target = m["target"]
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                assert not target.startswith("file:"), f"{name}: {target}"
                continue
            local = (path.parent / target.split("#")[0]).resolve()
            assert local.is_relative_to(ROOT), f"{name} links outside the repository: {target}"
            assert local.exists(), f"{name}: broken link {target}"


def test_fences_say_whether_they_run():
    """Every fence has an info string; `bash`/`shell` would be ambiguous (only `sh` runs)."""
    for name, path in documents():
        for block in flows.blocks(path, name):
            assert block.info, f"{block.where}: a fence needs an info string (sh runs; text/console do not)"
            assert block.info not in {"bash", "shell", "zsh"}, f"{block.where}: use sh (runs) or console"


def test_readme_is_short_and_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    first = flows.blocks(ROOT / "README.md", "README.md")[0]
    assert first.info == "console"
    assert [line.split("#")[0].strip() for line in first.lines] == ["make run", "make test"]


@contextmanager
def make_run(tmp: Path, extra_env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """`python -m yibao.serve` (what `make run` runs) on a free port; yields its URL and instance folder."""
    port = free_port()
    instance = tmp / "instance"
    env = {k: v for k, v in os.environ.items() if k not in _SERVICE_VARS and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        PORT=str(port),
        ADMIN_TOKEN=ADMIN_TOKEN,
        YIBAO_INSTANCE_DIR=str(instance),
        WEB_CONCURRENCY="2",
        PYTHONUNBUFFERED="1",
        TMPDIR=str(tmp),
        LOG_LEVEL="WARNING",
        **extra_env,
    )
    log = open(tmp / "serve.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "yibao.serve"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp / "serve.log").read_text()
            try:
                with urllib.request.urlopen(url + "/readyz", timeout=2):  # noqa: S310 - local server
                    break
            except OSError:
                assert time.monotonic() < deadline, (tmp / "serve.log").read_text()
                time.sleep(0.3)
        yield url, instance
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture
def service_env(request: pytest.FixtureRequest, is_postgres: bool) -> dict[str, str]:
    """Nothing on SQLite (make run's own defaults); the suite's own database and Redis on PostgreSQL."""
    if not is_postgres:
        return {}
    database_url = request.getfixturevalue("database_url")  # emptied for this test
    redis_url = request.getfixturevalue("redis_url")
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    r.close()
    return {"DATABASE_URL": database_url, "REDIS_URL": redis_url}


@pytest.mark.slow
def test_every_documented_flow_runs_as_written(tmp_path: Path, service_env: dict[str, str]):
    for tool in ("curl", "jq", "openssl", "sha256sum", "bash"):
        assert shutil.which(tool), f"the documented flows need {tool}"
    (tmp_path / "bodies").mkdir()
    log, out, err = tmp_path / "run.log", tmp_path / "stdout", tmp_path / "stderr"
    log.touch()
    (tmp_path / "flows.sh").write_text(flows.script(documents()))
    with make_run(tmp_path, service_env) as (url, _instance):
        # The reader's shell: in the folder `make run` ran in (instance/ holds the demo credentials), with the
        # ADMIN_TOKEN the server prints and the PORT it serves on.
        env = {k: v for k, v in os.environ.items() if k not in _SERVICE_VARS}
        env.update(
            PORT=url.rsplit(":", 1)[1],
            ADMIN_TOKEN=ADMIN_TOKEN,
            YB_DOCS_LOG=str(log),
            YB_DOCS_OUT=str(out),
            YB_DOCS_TMP=str(tmp_path / "bodies"),
        )
        with open(out, "ab") as stdout, open(err, "wb") as stderr:
            proc = subprocess.Popen(  # noqa: S603
                ["bash", str(tmp_path / "flows.sh")],  # noqa: S607
                cwd=tmp_path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
            )
            timer = threading.Timer(240, proc.kill)
            timer.start()
            code = proc.wait()
            timer.cancel()
    problems, reached = flows.verify(log.read_text(), out.read_bytes())
    if code != 0:
        problems.append(f"bash exited {code} in block {reached[-1] if reached else '?'}")
    report = "\n".join(problems)
    assert not problems, (
        f"{report}\n--- blocks run: {', '.join(reached)}\n--- stderr (tail):\n{err.read_text()[-3000:]}"
        f"\n--- stdout (tail):\n{out.read_text(errors='replace')[-2000:]}"
    )
