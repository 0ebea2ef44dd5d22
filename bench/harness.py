"""Benchmark harness: start the real service under gunicorn, load it from separate processes, report ratios.

with Server() as srv:                       # README defaults: SQLite + embedded Valkey
    base = bare_baseline(srv.url)
    stats = load(srv.url, "bench.voucher:verify_requests", clients=8, duration=10, args={...})
    report("verification", stats, base)

with Server(postgres=True) as srv: ...     # the machine's PostgreSQL (database yibao_bench) + Redis db 15
"""

from __future__ import annotations

import fcntl
import http.client
import importlib
import itertools
import json
import multiprocessing as mp
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

from yibao_client import signing

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_BENCH_DB = os.environ.get("BENCH_PG_DB", "yibao_bench")
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
# A @prebuilt factory's requests are signed before the window, and the service accepts a signature
# for ±300 s: a load must end well inside that.
PREBUILT_MAX = 200_000
PREBUILT_MAX_AGE = 240.0  # a client fails rather than send a request signed longer ago
READY_TIMEOUT = 300.0  # building a client's requests
RESULT_GRACE = 120.0  # after the window: the last requests' answers and the client's report
PG_LOCK = "/tmp/yibao-pg.lock"  # noqa: S108 - the lock the benchmarks take for the machine PostgreSQL

Request = tuple[str, str, dict[str, str], bytes]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reset_pg_database() -> str:
    """Drop and recreate the benchmark database; return its URL."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{PG_BENCH_DB}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{PG_BENCH_DB}"


class Server:
    """`python -m yibao.serve` (the `make run` path) in a temporary instance folder."""

    def __init__(
        self, *, postgres: bool = False, workers: int = 4, env: dict[str, str] | None = None
    ) -> None:
        self.postgres = postgres
        self.workers = workers
        self.extra_env = env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token = "bench-admin-" + os.urandom(8).hex()
        self.instance = Path(tempfile.mkdtemp(prefix="yibao-bench-"))
        self.proc: subprocess.Popen | None = None
        self.demo: dict[str, Any] = {}
        self.database_url: str | None = None
        self.redis_url: str | None = None

    @property
    def label(self) -> str:
        return "postgresql+redis" if self.postgres else "sqlite+embedded-valkey"

    def __enter__(self) -> Server:
        env = server_env(
            self.port, self.workers, YIBAO_INSTANCE_DIR=str(self.instance), ADMIN_TOKEN=self.admin_token
        )
        if self.postgres:
            import redis

            self.database_url = env["DATABASE_URL"] = reset_pg_database()
            self.redis_url = env["REDIS_URL"] = BENCH_REDIS_URL
            redis.Redis.from_url(BENCH_REDIS_URL).flushdb()
        env.update(self.extra_env)
        self.log = open(self.instance / "server.log", "wb")  # noqa: SIM115 - closed in __exit__
        self.proc = start_group([sys.executable, "-m", "yibao.serve"], env, self.log)
        wait_ready(self.proc, self.url, "/readyz", self.instance / "server.log")
        self.demo = json.loads((self.instance / "demo-credentials.json").read_text())
        if not self.postgres:
            self.database_url = f"sqlite:///{self.instance / 'yibao.sqlite3'}"
        return self

    def worker_pids(self) -> list[int]:
        """Pids of the gunicorn processes (master and workers) of this server."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"gunicorn" in cmd and _in_group(pid, self.proc.pid):  # type: ignore[union-attr]
                pids.append(pid)
        return pids

    def rss_kb(self) -> dict[int, int]:
        """Resident memory of every gunicorn process of this server, by pid."""
        result = {}
        for pid in self.worker_pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        result[pid] = int(line.split()[1])
            except OSError:
                pass
        return result

    def __exit__(self, *exc: object) -> None:
        if self.proc:
            stop_group(self.proc)
        self.log.close()


# The process group of every benchmark server now running, by URL: load() counts exactly that group's
# CPU as `service` (another gunicorn on the machine, e.g. an agent's test server, is `other`).
_SERVER_GROUPS: dict[str, int] = {}


def server_env(port: int, workers: int, **extra: str) -> dict[str, str]:
    """A benchmark server's environment: this one's without the database and Redis settings, the port,
    WEB_CONCURRENCY workers, quiet logs, the checkout on the path."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "REDIS_CLUSTER_URL"}}
    env.update(PORT=str(port), WEB_CONCURRENCY=str(workers), LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def start_group(cmd: list[str], env: dict[str, str], log: Any) -> subprocess.Popen:
    """Start a benchmark server as the leader of a new process group (pgid = its pid), output to `log`."""
    return subprocess.Popen(  # noqa: S603 - fixed argv
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_ready(proc: subprocess.Popen, url: str, path: str, log_path: Path, timeout: float = 120) -> None:
    """Poll `url + path` until it answers 200; then register `url` with the server's process group
    (load() counts that group as the service)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited; see {log_path}")
        try:
            with urllib.request.urlopen(url + path, timeout=2) as resp:  # noqa: S310
                if resp.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
    else:
        raise RuntimeError("server did not become ready")
    _SERVER_GROUPS[url.rstrip("/")] = proc.pid


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (SIGKILL after 20 s); forget its URL."""
    for url, pgid in list(_SERVER_GROUPS.items()):
        if pgid == proc.pid:
            del _SERVER_GROUPS[url]
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


def server_group(url: str) -> int | None:
    """The process group of the benchmark server at `url` (None: not one this process started)."""
    return _SERVER_GROUPS.get(url.rstrip("/"))


def _in_group(pid: int, pgid: int) -> bool:
    try:
        return os.getpgid(pid) == pgid
    except OSError:
        return False


# ---------------------------------------------------------------- load generation


@dataclass
class Stats:
    requests: int
    ok: int
    duration: float
    latencies_ms: list[float] = field(repr=False)
    statuses: Counter
    # CPU seconds spent during the run, by process group (see cpu_snapshot): the whole machine's work
    cpu_s: dict[str, float] = field(default_factory=dict)

    def cpu_ms_per_request(self) -> dict[str, float]:
        """CPU ms per answered request, by process group (all requests sent, when none succeeded)."""
        n = self.ok or self.requests
        return {k: round(v / n * 1000, 3) for k, v in self.cpu_s.items()} if n else {}

    @property
    def rps(self) -> float:
        return self.ok / self.duration if self.duration else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q * len(data)))]

    @property
    def p50(self) -> float:
        return self.pct(0.50)

    @property
    def p99(self) -> float:
        return self.pct(0.99)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "ok": self.ok,
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50, 2),
            "p99_ms": round(self.p99, 2),
            "statuses": dict(self.statuses),
            "cpu_ms_per_request": self.cpu_ms_per_request(),
        }


# ---------------------------------------------------------------- where the machine's CPU went

CPU_GROUPS = ("service", "postgresql", "redis", "clients", "other")
_TICK = os.sysconf("SC_CLK_TCK")


def _group(pid: str, comm: str, pgid: int | None = None) -> str:
    """The process group of a process: the service, PostgreSQL (the benchmark database's backends and
    the server's own background processes, e.g. the WAL writer), Redis or Valkey (the embedded one
    too), or anything else on the machine (other work; PostgreSQL backends of other databases and
    other gunicorn servers included).

    The service is the benchmark server's process group `pgid` (its launcher, gunicorn master and
    workers); without one (a server this process did not start), any gunicorn or yibao.serve."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "other"
    if comm.startswith(("postgres", "postmaster")):
        # A backend's title is "postgres: [CLUSTER: ]USER DATABASE HOST(PORT) STATE"; a background
        # process (walwriter, checkpointer) or the postmaster has no HOST(PORT) word.
        words = cmd.replace(b"\0", b" ").decode(errors="replace").split()
        host = next((i for i, w in enumerate(words) if i >= 2 and "(" in w and w.endswith(")")), None)
        return "postgresql" if host is None or words[host - 1] == PG_BENCH_DB else "other"
    if comm.startswith(("redis-server", "valkey-server", "redis-", "valkey")):
        return "redis"
    if pgid is not None:
        return "service" if _in_group(int(pid), pgid) else "other"
    return "service" if b"gunicorn" in cmd or b"yibao.serve" in cmd else "other"


Snapshot = dict[int, tuple[str, float]]  # pid -> (group, CPU seconds so far)


def cpu_snapshot(exclude: set[int] | None = None, pgid: int | None = None) -> Snapshot:
    """CPU seconds (user + system) used so far by every live process: {pid: (group, seconds)};
    `pgid`: the benchmark server's process group (the `service`, see _group)."""
    out: Snapshot = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or (exclude and int(entry.name) in exclude):
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        group = _group(entry.name, comm, pgid)
        out[int(entry.name)] = (group, (int(fields[11]) + int(fields[12])) / _TICK)
    return out


def cpu_between(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds by group between two snapshots, process by process: a process that started in
    between counts from zero; one that ended in between is lost (the load clients report their own
    CPU, see load; the service, PostgreSQL and Redis live across a run)."""
    out = dict.fromkeys(CPU_GROUPS, 0.0)
    for pid, (group, seconds) in after.items():
        out[group] += max(0.0, seconds - before.get(pid, (group, 0.0))[1])
    return out


def _resolve(path: str) -> Callable[..., Iterator[Request]]:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def prebuilt(factory: Callable[..., Iterator[Request]]) -> Callable[..., Iterator[Request]]:
    """Mark a finite request factory whose requests a client builds before the timed window (signed
    requests: the signing is the load generator's work, not the service's, and a bare GET has none)."""
    factory.prebuilt = True  # type: ignore[attr-defined]
    return factory


def _client(
    url: str,
    factory: str,
    index: int,
    args: dict,
    duration: float,
    max_requests: int | None,
    ok_statuses: tuple[int, ...],
    start: Any,
    ready: Any,
    out: Any,
) -> None:
    host, port = url.removeprefix("http://").split(":")
    make = _resolve(factory)
    gen = make(index, args)
    signed_by = time.time() + PREBUILT_MAX_AGE if getattr(make, "prebuilt", False) else None
    if signed_by is not None:
        built = list(itertools.islice(gen, max_requests or PREBUILT_MAX + 1))
        if len(built) > PREBUILT_MAX:
            raise ValueError(f"{factory} is @prebuilt but yields more than {PREBUILT_MAX} requests")
        gen = iter(built)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    lat: list[float] = []
    statuses: Counter = Counter()
    sent = 0
    ready.put(os.getpid())
    while not start.value:
        time.sleep(0.001)
    start_at = start.value
    if start_at < 0:  # the load was called off (another client failed)
        return
    while time.time() < start_at:
        time.sleep(0.001)
    cpu0 = time.process_time()
    end = start_at + duration
    for method, path, headers, body in gen:
        if time.time() >= end or (max_requests is not None and sent >= max_requests):
            break
        if signed_by is not None and time.time() > signed_by:
            raise RuntimeError(f"{factory}: prebuilt requests older than {PREBUILT_MAX_AGE} s (signatures)")
        t0 = time.perf_counter()
        for attempt in range(2):
            try:
                conn.request(method, path, body=body or None, headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                break
            except (ConnectionError, http.client.HTTPException, OSError):
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                if attempt:
                    resp = None  # type: ignore[assignment]
        elapsed = (time.perf_counter() - t0) * 1000
        sent += 1
        status = resp.status if resp is not None else 0
        statuses[status] += 1
        if status in ok_statuses:
            lat.append(elapsed)
    out.put((sent, lat, statuses, time.process_time() - cpu0, os.getpid()))


def load(
    url: str,
    factory: str,
    *,
    clients: int = 8,
    duration: float = 10.0,
    args: dict | None = None,
    max_requests_per_client: int | None = None,
    ok_statuses: tuple[int, ...] = (200, 201),
    pgid: int | None = None,
) -> Stats:
    """Drive `factory(index, args)` -> iterator of (method, path, headers, body) from `clients` processes.

    The timed window starts once every client is ready (a @prebuilt factory's requests built).
    `pgid`: the server's process group, whose CPU is the `service` group; by default the group of the
    benchmark server at `url` (Server, or any server started with start_group and wait_ready)."""
    if pgid is None:
        pgid = server_group(url)
    ctx = mp.get_context("fork")
    out, ready = ctx.Queue(), ctx.Queue()
    start = ctx.Value("d", 0.0)
    procs = [
        ctx.Process(
            target=_client,
            args=(
                url,
                factory,
                i,
                args or {},
                duration,
                max_requests_per_client,
                ok_statuses,
                start,
                ready,
                out,
            ),
            daemon=True,
        )
        for i in range(clients)
    ]
    for p in procs:
        p.start()
    clients_pids = {p.pid for p in procs if p.pid is not None}
    try:
        _collect(ready, procs, deadline=time.time() + READY_TIMEOUT, what="ready")
        start_at = time.time() + 0.3
        start.value = start_at
        while time.time() < start_at - 0.05:
            time.sleep(0.01)
        before = cpu_snapshot(exclude=clients_pids, pgid=pgid)
        results = _collect(out, procs, deadline=start_at + duration + RESULT_GRACE, what="results")
        after = cpu_snapshot(exclude=clients_pids, pgid=pgid)
    except BaseException:
        start.value = -1.0  # clients still waiting return at once
        for p in procs:
            p.terminate()
        raise
    finally:
        for p in procs:
            p.join(timeout=10)
    wall = time.time() - start_at
    cpu = cpu_between(before, after)
    cpu["clients"] = sum(r[3] for r in results)
    sent = sum(r[0] for r in results)
    lat = [x for r in results for x in r[1]]
    statuses: Counter = Counter()
    for r in results:
        statuses.update(r[2])
    used = min(duration, wall) if max_requests_per_client is None else wall
    return Stats(sent, len(lat), used, lat, statuses, cpu)


def _collect(queue: Any, procs: list[Any], *, deadline: float, what: str) -> list[Any]:
    """One message per client from `queue`; RuntimeError as soon as a client died without sending
    its message, or at the deadline (a hung server or client), instead of waiting forever."""
    got: list[Any] = []
    while len(got) < len(procs):
        try:
            got.append(queue.get(timeout=0.5))
            continue
        except Empty:
            pass
        dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
        if dead:
            raise RuntimeError(f"a load client failed before sending its {what} (exit codes {dead})")
        if time.time() > deadline:
            raise RuntimeError(f"load clients sent {len(got)} of {len(procs)} {what} in time")
    return got


def bare_requests(index: int, args: dict) -> Iterator[Request]:
    """The bare JSON endpoint: GET /healthz."""
    while True:
        yield "GET", "/healthz", {}, b""


def bare_baseline(url: str, *, clients: int = 8, duration: float = 10.0) -> Stats:
    return load(url, "bench.harness:bare_requests", clients=clients, duration=duration)


def report(name: str, stats: Stats, base: Stats, *, target_ratio: float | None = None) -> dict[str, Any]:
    ratio = stats.rps / base.rps if base.rps else float("nan")
    p99_ratio = stats.p99 / base.p99 if base.p99 else float("nan")
    verdict = ""
    if target_ratio is not None:
        verdict = "  MEETS target" if ratio >= target_ratio else f"  BELOW target {target_ratio:.0%}"
    print(
        f"{name:<38} {stats.rps:9.1f} req/s  p50 {stats.p50:7.2f} ms  p99 {stats.p99:7.2f} ms  "
        f"ratio {ratio:6.1%}  p99x {p99_ratio:5.1f}  statuses {dict(stats.statuses)}{verdict}",
        flush=True,
    )
    per = stats.cpu_ms_per_request()
    if per:
        total = sum(v for k, v in per.items() if k != "other")
        parts = "  ".join(f"{k} {per[k]:.3f}" for k in CPU_GROUPS)
        print(f"{'':<38} CPU ms/request: {parts}  (total without other {total:.3f})", flush=True)
    return {"name": name, **stats.as_dict(), "ratio": round(ratio, 3), "p99_ratio": round(p99_ratio, 2)}


def print_header(srv: Server, base: Stats) -> None:
    print(f"\n== {srv.label}: {srv.workers} gunicorn workers at {srv.url} ==", flush=True)
    report("bare GET /healthz (baseline)", base, base)


def signed_headers(key_id: str, secret: str, method: str, path: str, body: bytes) -> dict[str, str]:
    """Institution request signing, by the SDK (yibao_client.signing): a fresh timestamp and nonce."""
    h = signing.sign(secret, method, path, body, key_id=key_id)
    if body:
        h["Content-Type"] = "application/json"
    return h


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@contextmanager
def pg_lock() -> Iterator[None]:
    """One benchmark at a time on the machine's PostgreSQL."""
    with open(PG_LOCK, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def pooled(a: Stats, b: Stats) -> Stats:
    """Two runs of one endpoint as one (a baseline before and after the measured runs)."""
    return Stats(
        a.requests + b.requests,
        a.ok + b.ok,
        a.duration + b.duration,
        a.latencies_ms + b.latencies_ms,
        a.statuses + b.statuses,
        {k: a.cpu_s.get(k, 0.0) + b.cpu_s.get(k, 0.0) for k in {*a.cpu_s, *b.cpu_s}},
    )
