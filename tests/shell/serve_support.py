"""`python -m yibao.serve` (what `make run` runs) as a real subprocess, for tests of the start command."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Never inherited from the shell that runs pytest: each test says what the start command gets.
_OWN_VARS = {
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_CLUSTER_URL",
    "ADMIN_TOKEN",
    "SECRET_KEY",
    "PROMETHEUS_MULTIPROC_DIR",
    "YIBAO_ENV",
    "YIBAO_SEED_DEMO",
    "YIBAO_SANDBOX_IDENTITY",
    "IDENTITY_PROVIDER",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _OWN_VARS}
    env.update(
        YIBAO_INSTANCE_DIR=str(tmp_path / "instance"),
        WEB_CONCURRENCY="1",
        PYTHONUNBUFFERED="1",
        TMPDIR=str(tmp_path),
        PORT=str(free_port()),
        **overrides,
    )
    return env


def run_to_exit(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Start the command and wait for it to stop by itself (a refused start)."""
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "yibao.serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class Served:
    base: str
    proc: subprocess.Popen
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.stdout) + "".join(self.stderr)


@contextmanager
def serving(env: dict[str, str]) -> Iterator[Served]:
    """The start command until /readyz answers 200; stopped with SIGTERM (like Ctrl-C) afterwards."""
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "yibao.serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    served = Served(f"http://127.0.0.1:{env['PORT']}", proc)
    readers = [
        threading.Thread(target=lambda: served.stdout.extend(iter(proc.stdout.readline, "")), daemon=True),
        threading.Thread(target=lambda: served.stderr.extend(iter(proc.stderr.readline, "")), daemon=True),
    ]
    for r in readers:
        r.start()
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"the start command exited {proc.returncode}:\n{served.output}")
            try:
                with urllib.request.urlopen(served.base + "/readyz", timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"not ready in time:\n{served.output}")
            time.sleep(0.3)
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for r in readers:
            r.join(5)
