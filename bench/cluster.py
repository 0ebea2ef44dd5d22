"""Redis Cluster benchmark (issue 12, "scale past one machine"): `python -m bench cluster`.

Starts a local 3-master Redis Cluster with the machine's `redis-server` (cluster-enabled, no replicas, no
persistence, ports from free_port), then in one sitting runs the PostgreSQL server twice: with the
single-node Redis (REDIS_URL, the bench Redis db) and with REDIS_CLUSTER_URL pointing at the cluster, and
reports issuance and verification (signed codes) for both, each as a ratio to its own bare endpoint and
the cluster's throughput as a ratio to the single node's. Skipped, with the reason printed, when
redis-server or redis-cli is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness import Server, free_port, pg_lock, print_header, report
from bench.voucher import CLIENTS, NAMES, SERVER_ENV, USERS, make_users, throughput

MASTERS = 3


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    import socket

    for _ in range(50):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def _cli(*args: str, timeout: float = 60) -> str:
    return subprocess.run(  # noqa: S603
        ["redis-cli", *args], capture_output=True, text=True, timeout=timeout, check=True
    ).stdout


@contextmanager
def redis_cluster(masters: int = MASTERS) -> Iterator[str]:
    """A local Redis Cluster of `masters` nodes; yields its URL (any node); the nodes stop at exit."""
    folder = Path(tempfile.mkdtemp(prefix="yibao-bench-cluster-"))
    ports = [_cluster_port() for _ in range(masters)]
    procs = []
    try:
        for port in ports:
            log = open(folder / f"{port}.log", "wb")  # noqa: SIM115 - the node's stdout until it ends
            procs.append(
                subprocess.Popen(  # noqa: S603
                    [
                        "redis-server",
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        f"nodes-{port}.conf",
                        "--cluster-node-timeout",
                        "5000",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(folder),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        for port in ports:
            _wait(lambda p=port: _cli("-p", str(p), "ping").strip() == "PONG", "node up")
        _cli(
            "--cluster",
            "create",
            *[f"127.0.0.1:{p}" for p in ports],
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        )
        _wait(lambda: "cluster_state:ok" in _cli("-p", str(ports[0]), "cluster", "info"), "cluster ok")
        yield f"redis://127.0.0.1:{ports[0]}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(folder, ignore_errors=True)


def _wait(check: Any, what: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if check():
                return
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"redis cluster: {what} not reached in {timeout:.0f} s")


def _one(label: str, env: dict[str, str]) -> dict[str, Any]:
    with Server(postgres=True, env={**SERVER_ENV, **env}) as srv:
        tokens = make_users(srv, USERS)
        inst = srv.demo["institutions"]["pharmacy"]
        runs = throughput(srv, tokens, inst, None)
        base = runs["bare"]
        print_header(srv, base)
        print(f"   ({label})", flush=True)
        out: dict[str, Any] = {"bare_rps": round(base.rps, 1)}
        for key in ("issuance", "verification"):
            name, target = NAMES[key]
            out[key] = report(f"{name}, {label}", runs[key], base, target_ratio=target)
    return out


def main() -> dict[str, Any]:
    missing = [tool for tool in ("redis-server", "redis-cli") if shutil.which(tool) is None]
    if missing:
        print(f"bench cluster SKIPPED: {' and '.join(missing)} not found on PATH (install redis-server)")
        return {"skipped": f"{missing} not found"}
    with pg_lock():
        single = _one("single-node Redis", {})
        with redis_cluster() as url:
            clustered = _one(f"{MASTERS}-master Redis Cluster", {"REDIS_CLUSTER_URL": url})
    result = {"single": single, "cluster": clustered, "clients": CLIENTS}
    print("\n== Redis Cluster vs single node (PostgreSQL, same sitting) ==")
    for key in ("issuance", "verification"):
        s, c = single[key], clustered[key]
        result[f"{key}_cluster_vs_single"] = rel = round(c["rps"] / s["rps"], 3) if s["rps"] else None
        print(
            f"{NAMES[key][0]:<38} single {s['rps']:8.1f} req/s ({s['ratio']:.1%} of bare)   "
            f"cluster {c['rps']:8.1f} req/s ({c['ratio']:.1%} of bare)   cluster/single {rel:.2f}",
            flush=True,
        )
    print("\ncluster bench summary:", json.dumps(result, default=str))
    return result


if __name__ == "__main__":
    main()
