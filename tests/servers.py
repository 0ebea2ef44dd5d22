"""The real service under gunicorn, for tests that need several worker processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from yibao.config import ServerSettings
from yibao.serve import gunicorn_command

ROOT = Path(__file__).resolve().parents[1]
# Taken from the test's own settings, never inherited from the shell that runs pytest.
_SERVICE_VARS = {"DATABASE_URL", "REDIS_URL", "REDIS_CLUSTER_URL"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn(env: dict[str, str], *, workers: int = 4, log_dir: Path | None = None) -> Iterator[str]:
    """`gunicorn yibao.wsgi:app` on a free loopback port with these settings; yields its base URL."""
    port = free_port()
    own_dir = log_dir is None
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="yibao-gunicorn-"))
    log_path = log_dir / f"gunicorn-{port}.log"
    full_env = {
        **{k: v for k, v in os.environ.items() if k not in _SERVICE_VARS},
        "YIBAO_INSTANCE_DIR": str(log_dir / "instance"),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        **env,
    }
    serve_command = gunicorn_command(
        ServerSettings(host="127.0.0.1", port=port, workers=workers, access_log=False)
    )
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(  # noqa: S603
        # The command of `make run` (yibao.serve), with a longer timeout for loaded test machines.
        [*serve_command[:-1], "--timeout", "60", serve_command[-1]],
        cwd=ROOT,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the whole server is stopped below
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(log_path.read_text())
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2):  # noqa: S310
                    break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        if own_dir:
            shutil.rmtree(log_dir, ignore_errors=True)
