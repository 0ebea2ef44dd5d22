"""The benchmark harness's CPU accounting (bench/harness.py): with the benchmark server's process group
given, `service` is exactly that group; another gunicorn on the machine is `other`."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import harness

# a process whose command line names gunicorn, as another agent's test server's would
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)", "gunicorn", "yibao.serve"]


@pytest.fixture
def other_gunicorn() -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(SLEEPER, start_new_session=True)  # noqa: S603
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def our_server(tmp_path: Path) -> Iterator[subprocess.Popen]:
    """A stand-in server: its own group, a child without gunicorn in its command line, registered."""
    child = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    )
    with open(tmp_path / "log", "wb") as log:
        proc = harness.start_group([sys.executable, "-c", child], {}, log)
    harness._SERVER_GROUPS["http://127.0.0.1:1"] = proc.pid
    yield proc
    harness.stop_group(proc)


def comm(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.index("(") + 1 : stat.rindex(")")]


def test_without_a_group_any_gunicorn_is_the_service(other_gunicorn: subprocess.Popen) -> None:
    assert harness._group(str(other_gunicorn.pid), comm(other_gunicorn.pid)) == "service"


def test_with_the_servers_group_only_that_group_is_the_service(
    other_gunicorn: subprocess.Popen, our_server: subprocess.Popen
) -> None:
    pgid = harness.server_group("http://127.0.0.1:1/")
    assert pgid == our_server.pid
    deadline = time.time() + 10
    while time.time() < deadline:
        snap = harness.cpu_snapshot(pgid=pgid)
        members = [pid for pid, (group, _) in snap.items() if group == "service"]
        if len(members) >= 2:
            break
        time.sleep(0.05)
    assert our_server.pid in members and len(members) == 2  # the leader and its child, nothing else
    assert snap[other_gunicorn.pid][0] == "other"
    assert harness.cpu_snapshot()[other_gunicorn.pid][0] == "service"  # the old rule, without a group


def test_a_stopped_server_is_forgotten(our_server: subprocess.Popen) -> None:
    harness.stop_group(our_server)
    assert harness.server_group("http://127.0.0.1:1") is None
    assert our_server.poll() is not None
