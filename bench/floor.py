"""The floor of issue 12's throughput targets, measured: `python -m bench floor`.

The service's own gunicorn command (yibao.serve.gunicorn_command: the same config, gthread worker class,
WEB_CONCURRENCY=4 workers of WEB_THREADS=8 threads) serves a lean WSGI app (bench/floor_app.py) whose
endpoints do only the irreducible work of a verification and of a pay, on the machine's PostgreSQL (the
benchmark database, scratch tables) and Redis (BENCH_REDIS_URL). The same load clients as the real
suites (bench.voucher:verify_requests, bench.payments:pay_requests: every request signed as an
institution signs it, same bodies and paths) load:

- GET /healthz, raw WSGI: this server's bare endpoint (before and after, pooled); GET /flask/healthz,
  the same from a minimal Flask view;
- POST /api/v1/verifications (raw WSGI) and POST /flask/api/v1/verifications (the same work as a
  minimal Flask view): HMAC, Ed25519, one Redis script, INSERT + INSERT + COMMIT;
- POST /api/v1/payment-orders/{id}/pay (raw WSGI): HMAC, SET NX, SELECT ... FOR UPDATE, two UPDATEs,
  the idempotency row and three ledger legs, COMMIT.

Each line gives req/s, p50, p99, the ratio to this server's bare and the CPU the machine spent per
request by process: what any Python service on this machine needs at least for that work.

Environment knobs:
  BENCH_FLOOR_DURATION  seconds of the pay load and of the bare loads before + after (default 10)
  BENCH_FLOOR_CODES     codes per verification run (default 12000; raw and Flask each)
  BENCH_FLOOR_ORDERS    orders prepared for the pay load (default 30000; more than it can pay)
  BENCH_FLOOR_CLIENTS   concurrent client processes (default 8)
  BENCH_FLOOR_WORKERS   gunicorn workers (default 4, `make run`'s)
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    BENCH_REDIS_URL,
    Stats,
    free_port,
    load,
    pg_lock,
    pooled,
    report,
    reset_pg_database,
    start_group,
    stop_group,
    wait_ready,
)

DURATION = float(os.environ.get("BENCH_FLOOR_DURATION", 10))
CODES = int(os.environ.get("BENCH_FLOOR_CODES", 12000))
ORDERS = int(os.environ.get("BENCH_FLOOR_ORDERS", 30000))
CLIENTS = int(os.environ.get("BENCH_FLOOR_CLIENTS", 8))
WORKERS = int(os.environ.get("BENCH_FLOOR_WORKERS", 4))
WARM = 400
USERS = 8  # subjects of the codes, as bench.voucher's
PAYERS = 200  # as bench.payments'
INSTITUTION_ACCOUNT, CASH_ACCOUNT = 1_000_001, 1_000_002
KID = "Fl0r"
TTL = 300  # bench.voucher's YIBAO_VOUCHER_TTL: the codes outlive the runs that spend them
VERIFICATION_TARGET, PAY_TARGET = 0.40, 0.30  # issue 12, for the reader of the lines


def institution() -> dict[str, Any]:
    """A pharmacy's credentials (the service's shapes: ak_ + 16 characters, a 43-character secret)."""
    return {"key_id": "ak_" + secrets.token_urlsafe(12), "secret": secrets.token_urlsafe(32)}


def make_codes(private: Any, subs: list[str], n: int, *, now: int | None = None) -> list[str]:
    """n YB1: codes signed with `private`, of the service's shape (voucher.token, voucher.claims)."""
    from voucher import token as tk
    from voucher.claims import new_jti

    header = tk.dumps({"alg": tk.ALG, "kid": KID, "typ": tk.TYP})
    codes = []
    for i in range(n):
        iat = int(time.time()) if now is None else now
        claims = {
            "iss": tk.ISSUER,
            "aud": tk.AUDIENCE,
            "sub": subs[i % len(subs)],
            "iat": iat,
            "exp": iat + TTL,
            "jti": new_jti(secrets.randbelow(1000)),
        }
        payload = tk.dumps(claims)
        sig = private.sign(tk.Parts(header, payload, b"").signing_input)
        codes.append(tk.Parts(header, payload, sig).qr_content)
    return codes


def prepare(dsn: str, inst: dict[str, Any], *, orders: int, payers: int = PAYERS) -> list[str]:
    """The scratch tables, the institution, payers with ample balances and `orders` unpaid orders
    (pay_order_ids returned, spread over the payers as bench.payments spreads them); VACUUM (ANALYZE)."""
    import psycopg

    from bench.floor_app import SCHEMA

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute("INSERT INTO floor_institutions VALUES (1, %s)", (inst["key_id"],))
        conn.execute(
            "INSERT INTO floor_accounts SELECT g, 1000000000000 FROM generate_series(1, %s) g", (payers,)
        )
        conn.execute(
            "INSERT INTO floor_accounts VALUES (%s, 0), (%s, 0)", (INSTITUTION_ACCOUNT, CASH_ACCOUNT)
        )
        conn.execute(
            "INSERT INTO floor_orders SELECT g, 'po_' || lpad(g::text, 24, '0'), 1, 1 + g %% %s,"
            " 'created', 3190, 2590, 600, 2590, 600, now(), NULL FROM generate_series(1, %s) g",
            (payers, orders),
        )
        conn.execute("VACUUM (ANALYZE)")
    return [f"po_{g:024d}" for g in range(1, orders + 1)]


def app_config(dsn: str, redis_url: str, inst: dict[str, Any], public_hex: str) -> dict[str, Any]:
    """bench/floor_app.py's FLOOR_CONFIG."""
    return {
        "dsn": dsn,
        "redis_url": redis_url,
        "institutions": {
            inst["key_id"]: {
                "id": 1,
                "secret": inst["secret"],
                "services": ["02121", "online_otc"],
                "account_id": INSTITUTION_ACCOUNT,
            }
        },
        "keys": {KID: public_hex},
        "cash_account_id": CASH_ACCOUNT,
    }


class FloorServer:
    """bench/floor_app.py under `make run`'s gunicorn command, as the leader of its own process group."""

    def __init__(self, config: dict[str, Any], *, workers: int = WORKERS) -> None:
        self.config = config
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="yibao-floor-"))

    def command(self, env: dict[str, str]) -> list[str]:
        from yibao.config import server_settings
        from yibao.serve import gunicorn_command

        cmd = gunicorn_command(server_settings(env))
        assert cmd[-1] == "yibao.wsgi:app", cmd
        return [*cmd[:-1], "bench.floor_app:app"]

    def __enter__(self) -> FloorServer:
        from bench.harness import ROOT

        env = {
            k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "REDIS_CLUSTER_URL"}
        }
        env.update(
            PORT=str(self.port),
            WEB_CONCURRENCY=str(self.workers),
            LOG_LEVEL="WARNING",
            PYTHONPATH=str(ROOT),
            FLOOR_CONFIG=json.dumps(self.config),
        )
        self.log = open(self.dir / "server.log", "wb")  # noqa: SIM115 - closed in __exit__
        self.proc = start_group(self.command(env), env, self.log)
        wait_ready(self.proc, self.url, "/healthz", self.dir / "server.log")
        return self

    def __exit__(self, *exc: object) -> None:
        stop_group(self.proc)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def flask_bare_requests(index: int, args: dict) -> Any:
    """GET /flask/healthz: the bare endpoint of a minimal Flask app."""
    while True:
        yield "GET", "/flask/healthz", {}, b""


def cpu_total(stats: Stats) -> float:
    """The machine's CPU ms per answered request, without `other` (the neighbours' work)."""
    return sum(v for k, v in stats.cpu_ms_per_request().items() if k != "other")


def run(srv: FloorServer, inst: dict[str, Any], private: Any, orders: list[str]) -> dict[str, Stats]:
    """Warm-up, then bare before, Flask bare, the two verifications, pay, Flask bare, bare after."""
    subs = [secrets.token_urlsafe(6) for _ in range(USERS)]
    creds = {"key_id": inst["key_id"], "secret": inst["secret"]}

    def verify(prefix: str, n: int) -> Stats:
        codes = make_codes(private, subs, n)
        return load(
            srv.url,
            "bench.voucher:verify_requests",
            clients=CLIENTS,
            duration=3600,
            args={"codes": codes, "inst": inst, "clients": CLIENTS, "prefix": prefix},
            max_requests_per_client=len(codes) // CLIENTS,
            ok_statuses=(200,),
        )

    def pay(batch: list[str], duration: float) -> Stats:
        args = {"orders": batch, "clients": CLIENTS, **creds}
        return load(srv.url, "bench.payments:pay_requests", clients=CLIENTS, duration=duration, args=args)

    def bare(factory: str, duration: float) -> Stats:
        return load(srv.url, factory, clients=CLIENTS, duration=duration)

    # Warm-up (not reported): every worker thread's connections and prepared statements, code paths.
    verify("", WARM)
    verify("/flask", WARM)
    pay(orders[:WARM], 3600)
    out: dict[str, Stats] = {}
    base_1 = bare("bench.harness:bare_requests", DURATION / 2)
    flask_1 = bare("bench.floor:flask_bare_requests", DURATION / 4)
    out["verification"] = verify("", CODES)
    out["verification_flask"] = verify("/flask", CODES)
    out["pay"] = pay(orders[WARM:], DURATION)
    flask_2 = bare("bench.floor:flask_bare_requests", DURATION / 4)
    base_2 = bare("bench.harness:bare_requests", DURATION / 2)
    out["bare"], out["flask_bare"] = pooled(base_1, base_2), pooled(flask_1, flask_2)
    if out["pay"].requests >= len(orders) - WARM - CLIENTS:
        print(f"floor: the pay load ran out of orders: raise BENCH_FLOOR_ORDERS (now {ORDERS})", flush=True)
    return out


def main() -> dict[str, Any]:
    import redis
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private = Ed25519PrivateKey.generate()
    public_hex = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    inst = institution()
    results: dict[str, Any] = {}
    with pg_lock():
        dsn = reset_pg_database()
        redis.Redis.from_url(BENCH_REDIS_URL).flushdb()
        t0 = time.time()
        orders = prepare(dsn, inst, orders=ORDERS + WARM)
        with FloorServer(app_config(dsn, BENCH_REDIS_URL, inst, public_hex)) as srv:
            print(f"\n[floor] prepared {ORDERS + WARM} orders in {time.time() - t0:.1f} s", flush=True)
            runs = run(srv, inst, private, orders)
    base, flask_base = runs["bare"], runs["flask_bare"]
    print(
        f"\n== lean floor (bench/floor_app.py; postgresql+redis): {WORKERS} gunicorn workers, "
        f"`make run`'s command ==",
        flush=True,
    )
    results["bare"] = report("bare GET /healthz, raw WSGI (baseline)", base, base)
    results["flask_bare"] = report("GET /flask/healthz, minimal Flask", flask_base, base)
    rows = (
        ("verification", "POST /verifications, raw WSGI", VERIFICATION_TARGET),
        ("verification_flask", "POST /flask/verifications, minimal Flask", VERIFICATION_TARGET),
        ("pay", "POST …/pay, raw WSGI", PAY_TARGET),
    )
    for key, name, target in rows:
        results[key] = report(name, runs[key], base, target_ratio=target)
    flask_ratio = runs["verification_flask"].rps / flask_base.rps if flask_base.rps else float("nan")
    results["verification_flask"]["ratio_to_flask_bare"] = round(flask_ratio, 3)
    print(f"Flask verification vs the Flask /flask/healthz: {flask_ratio:.1%}", flush=True)
    # The team's argument (docs/benchmarks.md, run F): on 2 shared cores the ratio is about bare's
    # CPU per request over the endpoint's, load clients included.
    implied = {}
    for key in ("verification", "verification_flask", "pay"):
        bare_cpu = cpu_total(flask_base if key == "verification_flask" else base)
        implied[key] = round(bare_cpu / cpu_total(runs[key]), 3) if cpu_total(runs[key]) else None
        print(
            f"{key}: machine CPU {cpu_total(runs[key]):.3f} ms/request vs its bare's {bare_cpu:.3f}: "
            f"implied ratio {implied[key]:.1%}, measured "
            f"{flask_ratio if key == 'verification_flask' else results[key]['ratio']:.1%}",
            flush=True,
        )
    results["implied_ratio"] = implied
    print("\nfloor bench summary:", json.dumps(results, default=str))
    return results


if __name__ == "__main__":
    main()
