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
  the idempotency row and three ledger legs, COMMIT;
- the same two under /one/: a design variant (no Redis; nonce, single use and audit row, or the whole
  pay, in one autocommitted PostgreSQL statement): what fewer round trips would buy.

Unless BENCH_FLOOR_SERVICE=0, the service itself (harness.Server, PostgreSQL + Redis) runs beside it
and its bare GET /healthz, the targets' denominator, is loaded before and after the floor's loads
(pooled); an idle server's CPU counts as `other`. Then, in this process (one thread, no HTTP), the CPU
of each part of the two requests (HMAC, JSON, Ed25519, the Redis script, the PostgreSQL transaction).

Each line gives req/s, p50, p99, the ratio to this server's bare and the CPU the machine spent per
request by process: what any Python service on this machine needs at least for that work; then the
same requests/s over the minimal Flask bare and over the service's bare.

Environment knobs:
  BENCH_FLOOR_DURATION  seconds of the raw bare loads, before + after (default 10); each pay runs twice a
                        quarter of it, the Flask bare and the service's bare twice a quarter too
  BENCH_FLOOR_CODES     codes per verification (default 6000, in two runs; raw, Flask, one-statement)
  BENCH_FLOOR_ORDERS    orders prepared for the two pay loads (default 30000; more than they can pay)
  BENCH_FLOOR_CLIENTS   concurrent client processes (default 8)
  BENCH_FLOOR_WORKERS   gunicorn workers (default 4, `make run`'s)
  BENCH_FLOOR_PARTS     calls of each part timed in-process after the loads (default 300)
  BENCH_FLOOR_SERVICE   0 to leave out the service and its bare GET /healthz
"""

from __future__ import annotations

import contextlib
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
    Server,
    Stats,
    free_port,
    load,
    pg_lock,
    pooled,
    report,
    reset_pg_database,
    server_env,
    start_group,
    stop_group,
    wait_ready,
)

DURATION = float(os.environ.get("BENCH_FLOOR_DURATION", 10))
CODES = int(os.environ.get("BENCH_FLOOR_CODES", 6000))
ORDERS = int(os.environ.get("BENCH_FLOOR_ORDERS", 30000))
CLIENTS = int(os.environ.get("BENCH_FLOOR_CLIENTS", 8))
WORKERS = int(os.environ.get("BENCH_FLOOR_WORKERS", 4))
PARTS = int(os.environ.get("BENCH_FLOOR_PARTS", 300))
SERVICE_BARE = os.environ.get("BENCH_FLOOR_SERVICE", "1") != "0"
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
        env = server_env(self.port, self.workers, FLOOR_CONFIG=json.dumps(self.config))
        self.log = open(self.dir / "server.log", "wb")  # noqa: SIM115 - closed in __exit__
        self.proc = start_group(self.command(env), env, self.log)
        wait_ready(self.proc, self.url, "/healthz", self.dir / "server.log")
        return self

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join((self.dir / "server.log").read_text(errors="replace").splitlines()[-lines:])

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


def run(
    srv: FloorServer, inst: dict[str, Any], private: Any, orders: list[str], service_url: str | None = None
) -> dict[str, Stats]:
    """Warm-up; the service's bare and this server's bare before, Flask bare, the three verifications
    and the two pays (twice, the second time in the reverse order), Flask bare, this server's bare and
    the service's after (each pair pooled)."""
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

    def pay(batch: list[str], duration: float, prefix: str = "") -> Stats:
        args = {"orders": batch, "clients": CLIENTS, "prefix": prefix, **creds}
        return load(srv.url, "bench.payments:pay_requests", clients=CLIENTS, duration=duration, args=args)

    def bare(factory: str, duration: float) -> Stats:
        return load(srv.url, factory, clients=CLIENTS, duration=duration)

    def service_bare(duration: float) -> Stats | None:
        if service_url is None:
            return None
        return load(service_url, "bench.harness:bare_requests", clients=CLIENTS, duration=duration)

    # Warm-up (not reported): every worker thread's connections and prepared statements, code paths.
    for prefix in ("", "/flask", "/one"):
        verify(prefix, WARM // 2)
    pay(orders[: WARM // 2], 3600)
    pay(orders[WARM // 2 : WARM], 3600, "/one")
    service_bare(DURATION / 5)
    out: dict[str, Stats] = {}
    service_1 = service_bare(DURATION / 4)
    base_1 = bare("bench.harness:bare_requests", DURATION / 2)
    flask_1 = bare("bench.floor:flask_bare_requests", DURATION / 4)
    # Each endpoint twice, half its load each time, in the order A B C D E, then E D C B A (pooled):
    # the background load of a shared machine drifts, and falls on every endpoint alike this way.
    rest = orders[WARM:]
    quarter = len(rest) // 4
    loads = {
        "verification": lambda: verify("", CODES // 2),
        "verification_flask": lambda: verify("/flask", CODES // 2),
        "verification_one": lambda: verify("/one", CODES // 2),
        "pay": lambda: pay(batches.pop(0), DURATION / 4),
        "pay_one": lambda: pay(batches.pop(0), DURATION / 4, "/one"),
    }
    batches = [rest[i * quarter : (i + 1) * quarter] for i in range(4)]
    first = {key: go() for key, go in loads.items()}
    second = {key: go() for key, go in reversed(loads.items())}
    for key in loads:
        out[key] = pooled(first[key], second[key])
    flask_2 = bare("bench.floor:flask_bare_requests", DURATION / 4)
    base_2 = bare("bench.harness:bare_requests", DURATION / 2)
    service_2 = service_bare(DURATION / 4)
    out["bare"], out["flask_bare"] = pooled(base_1, base_2), pooled(flask_1, flask_2)
    if service_1 and service_2:
        out["service_bare"] = pooled(service_1, service_2)
    if max(x.requests for k in ("pay", "pay_one") for x in (first[k], second[k])) >= quarter - CLIENTS:
        print(f"floor: the pay load ran out of orders: raise BENCH_FLOOR_ORDERS (now {ORDERS})", flush=True)
    if any(s.ok < s.requests for s in out.values()):
        print(f"floor: some requests failed; the lean server's log ends:\n{srv.log_tail()}", flush=True)
    return out


def parts(config: dict[str, Any], inst: dict[str, Any], private: Any, orders: list[str], n: int) -> dict:
    """The CPU (and wall) ms of each part of the two requests, in this process: one thread, no HTTP,
    no contention from the load (what the service process spends on each, less gunicorn's share)."""
    import io
    from wsgiref.util import setup_testing_defaults

    from bench import floor_app as fa
    from bench.harness import signed_headers

    app = fa.FloorApp(config)
    path = "/api/v1/verifications"
    subs = [secrets.token_urlsafe(6) for _ in range(USERS)]
    codes = make_codes(private, subs, 3 * n)

    def scan(code: str) -> tuple[tuple, bytes]:
        body = json.dumps(
            {
                "qr_content": code,
                "business_type": "02121",
                "operator_id": "op-1",
                "operator_name": "bench",
                "device_id": "dev-0",
                "out_biz_no": secrets.token_hex(4),
            }
        ).encode()
        h = signed_headers(inst["key_id"], inst["secret"], "POST", path, body)
        return (h["X-Yb-Key"], h["X-Yb-Timestamp"], h["X-Yb-Nonce"], h["X-Yb-Signature"]), body

    scans = [scan(c) for c in codes]
    key = next(iter(app.keys.values()))
    blob = fa._b45decode(codes[0][len(fa.QR_PREFIX) :])
    hlen = blob[0]
    signing_input = fa._b64u(blob[1 : 1 + hlen]) + b"." + fa._b64u(blob[1 + hlen : -fa.SIG_LEN])
    sig = blob[-fa.SIG_LEN :]
    keys_of = [(f"fl:nonce:{{x}}:{secrets.token_hex(12)}", f"fl:vuse:{{y}}:{i}") for i in range(n + 1)]

    def write(i: int) -> None:
        def work(cur: Any) -> None:
            cur.execute(fa.INSERT_USE, ("part", f"j{i}", int(time.time()) + 300))
            cur.execute(
                fa.INSERT_USAGE,
                (1, "02121", "op-1", "bench", "dev-0", "b", "part", f"j{i}", "accepted", None, "ec_x"),
            )

        app._transaction(work)

    def wsgi(item: tuple[tuple, bytes]) -> None:
        (key_id, ts, nonce, signature), body = item
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "wsgi.input": io.BytesIO(body)}
        setup_testing_defaults(environ)
        environ.update(
            CONTENT_LENGTH=str(len(body)),
            HTTP_X_YB_KEY=key_id,
            HTTP_X_YB_TIMESTAMP=ts,
            HTTP_X_YB_NONCE=nonce,
            HTTP_X_YB_SIGNATURE=signature,
        )
        b"".join(app(environ, lambda *_: None))

    def pay(order: str) -> None:
        pay_path = f"/api/v1/payment-orders/{order}/pay"
        h = signed_headers(inst["key_id"], inst["secret"], "POST", pay_path, b"")
        headers = (h["X-Yb-Key"], h["X-Yb-Timestamp"], h["X-Yb-Nonce"], h["X-Yb-Signature"])
        app.pay(headers, pay_path, "", order, secrets.token_hex(12))

    table = (
        (
            "HMAC request signature (shapes, window, SHA-256, compare)",
            lambda x: fa.checked_signature(app.institutions, x[0], "POST", path, "", x[1]),
            scans[:n],
        ),
        ("JSON body", lambda x: json.loads(x[1]), scans[:n]),
        (
            "code: base45, Ed25519 verify, header and claims",
            lambda x: fa.checked_code(app.keys, x),
            codes[:n],
        ),
        (
            "  of which Ed25519 verify alone (cryptography)",
            lambda _: key.verify(sig, signing_input),
            range(n),
        ),
        (
            "Redis: the claim script (SET NX nonce + code), redis-py",
            lambda k: app._claim(keys=list(k), args=[900, 300]),
            keys_of,
        ),
        ("PostgreSQL: INSERT use + INSERT audit + COMMIT, psycopg", write, range(n + 1)),
        (
            "whole verification (FloorApp.verification)",
            lambda x: app.verification(x[0], "POST", path, "", x[1]),
            scans[n : 2 * n],
        ),
        ("whole raw WSGI call (environ, dispatch, answer JSON)", wsgi, scans[2 * n :]),
        ("whole pay (FloorApp.pay: SET NX, 7 statements, COMMIT)", pay, orders),
    )
    out: dict[str, dict[str, float]] = {}
    print(f"\n== the parts in-process (one thread, no HTTP; {n} calls each): CPU ms / wall ms per call ==")
    for name, fn, items in table:
        items = list(items)
        fn(items[0])  # first call: connection, prepared statement, script load
        c0, w0 = time.process_time(), time.perf_counter()
        for x in items[1:]:
            fn(x)
        calls = max(1, len(items) - 1)
        cpu, wall = (time.process_time() - c0) / calls * 1000, (time.perf_counter() - w0) / calls * 1000
        out[name.strip()] = {"cpu_ms": round(cpu, 4), "wall_ms": round(wall, 4)}
        print(f"{name:<62} {cpu:7.3f} / {wall:7.3f}", flush=True)
    app._cursor().connection.close()
    app.redis.close()
    return out


def main() -> dict[str, Any]:
    import redis
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private = Ed25519PrivateKey.generate()
    public_hex = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    inst = institution()
    results: dict[str, Any] = {}
    with pg_lock(), contextlib.ExitStack() as stack:
        t0 = time.time()
        # The service first (the targets' denominator, loaded in the same sitting): its start resets
        # the benchmark database and Redis db; the floor's scratch tables go into the same database.
        real = stack.enter_context(Server(postgres=True, workers=WORKERS)) if SERVICE_BARE else None
        if real is not None and real.database_url is not None:
            dsn = real.database_url
        else:
            dsn = reset_pg_database()
            redis.Redis.from_url(BENCH_REDIS_URL).flushdb()
        t1 = time.time()
        orders = prepare(dsn, inst, orders=ORDERS + WARM + PARTS + 1)
        with FloorServer(app_config(dsn, BENCH_REDIS_URL, inst, public_hex)) as srv:
            t2 = time.time()
            print(f"\n[floor] prepared {len(orders)} orders in {t2 - t1:.1f} s", flush=True)
            runs = run(srv, inst, private, orders[: -PARTS - 1], real.url if real else None)
            t3 = time.time()
        results["parts"] = parts(srv.config, inst, private, orders[-PARTS - 1 :], PARTS)
        print(
            f"[floor] seconds: the service's start {t1 - t0:.0f}, preparing and the floor's start "
            f"{t2 - t1:.0f}, loads {t3 - t2:.0f}, parts {time.time() - t3:.0f}",
            flush=True,
        )
    base, flask_base = runs["bare"], runs["flask_bare"]
    print(
        f"\n== lean floor (bench/floor_app.py; postgresql+redis): {WORKERS} gunicorn workers, "
        f"`make run`'s command ==",
        flush=True,
    )
    results["bare"] = report("bare GET /healthz, raw WSGI (baseline)", base, base)
    results["flask_bare"] = report("GET /flask/healthz, minimal Flask", flask_base, base)
    if "service_bare" in runs:
        results["service_bare"] = report("the service's GET /healthz (yibao)", runs["service_bare"], base)
    rows = (
        ("verification", "POST /verifications, raw WSGI", VERIFICATION_TARGET),
        ("verification_flask", "POST /flask/verifications, minimal Flask", VERIFICATION_TARGET),
        ("pay", "POST …/pay, raw WSGI", PAY_TARGET),
        ("verification_one", "variant: verification, one statement", VERIFICATION_TARGET),
        ("pay_one", "variant: pay, one statement", PAY_TARGET),
    )
    for key, name, target in rows:
        results[key] = report(name, runs[key], base, target_ratio=target)
    # The same requests/s over the other two bare endpoints: a minimal Flask app's and the service's own.
    for key in ("flask_bare", "service_bare"):
        if key not in runs or not runs[key].rps:
            continue
        ratios = {k: round(runs[k].rps / runs[key].rps, 3) for k, _, _ in rows}
        for k, ratio in ratios.items():
            results[k][f"ratio_to_{key}"] = ratio
        print(
            f"over the {'minimal Flask' if key == 'flask_bare' else 'service'}'s bare "
            f"({runs[key].rps:.1f} req/s): " + ", ".join(f"{k} {r:.1%}" for k, r in ratios.items()),
            flush=True,
        )
    # The team's argument (docs/benchmarks.md, run F): on 2 shared cores the ratio is about bare's
    # CPU per request over the endpoint's, load clients included.
    implied = {}
    for key, _, _ in rows:
        bare_cpu, cpu = cpu_total(base), cpu_total(runs[key])
        implied[key] = round(bare_cpu / cpu, 3) if cpu else None
        print(
            f"{key}: machine CPU {cpu:.3f} ms/request vs bare's {bare_cpu:.3f}: implied ratio "
            f"{bare_cpu / cpu if cpu else float('nan'):.1%}, measured {results[key]['ratio']:.1%}",
            flush=True,
        )
    results["implied_ratio"] = implied
    print("\nfloor bench summary:", json.dumps(results, default=str))
    return results


if __name__ == "__main__":
    main()
