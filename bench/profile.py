"""In-process CPU per request, split by layer: `python -m bench profile`.

On PostgreSQL + Redis (the bench server's database and Redis; the server itself only seeds and issues the
codes), each endpoint's requests are built beforehand (werkzeug's EnvironBuilder, signatures and bodies
included) and run one after the other through the Flask app's WSGI callable in this process:

1. CPU per request = time.process_time() over BENCH_PROFILE_N requests, no profiler (the true figure);
2. the split = cProfile (timer time.process_time) over BENCH_PROFILE_N more requests, every function's own
   time attributed to a layer by bench/layers.py; each layer's share of the profiled total is applied to
   the unprofiled CPU of step 1 (a deterministic profiler inflates many small Python calls more than few
   large C calls, so the shares lean towards the Python layers; the totals do not).

Only this process's CPU counts: PostgreSQL's and Redis's own CPU are not in these figures.

Environment knobs:
  BENCH_PROFILE_N   requests per endpoint in each of the two loops (default 300)
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import time
from collections.abc import Callable
from typing import Any

from bench import hospital, layers
from bench import payments as pay_bench
from bench.harness import Server, pg_lock, signed_headers
from bench.seed import setup_app

N = int(os.environ.get("BENCH_PROFILE_N", 300))
WARM = 30


Environ = dict[str, Any]


def environ(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> Environ:
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(path=path, method=method, headers=headers, data=body or None)
    try:
        return builder.get_environ()
    finally:
        builder.close()


def _start_response(status: str, headers: list, exc_info: Any = None) -> Callable[[bytes], None]:
    _start_response.status = status  # type: ignore[attr-defined]
    return lambda _data: None


def run(app: Any, environs: list[Environ], expect: str) -> None:
    """Each request through the WSGI app; the body read and closed as a server would."""
    for env in environs:
        result = app(env, _start_response)
        try:
            for _chunk in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close:
                close()
        status = _start_response.status  # type: ignore[attr-defined]
        if not status.startswith(expect):
            raise RuntimeError(f"{env['REQUEST_METHOD']} {env['PATH_INFO']} answered {status}")


def measure(app: Any, name: str, make: Callable[[int], list[Environ]], expect: str) -> dict[str, Any]:
    envs = make(WARM + 2 * N)
    run(app, envs[:WARM], expect)
    plain = envs[WARM : WARM + N]
    t0 = time.process_time()
    w0 = time.perf_counter()
    run(app, plain, expect)
    cpu_ms = (time.process_time() - t0) / N * 1000
    wall_ms = (time.perf_counter() - w0) / N * 1000
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    run(app, envs[WARM + N :], expect)
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    split = layers.split(stats)
    total = sum(split.values()) or 1.0
    return {
        "name": name,
        "cpu_ms": round(cpu_ms, 3),
        "wall_ms": round(wall_ms, 3),
        "profiled_ms": round(total / N * 1000, 3),
        "layers_ms": {k: round(v / total * cpu_ms, 3) for k, v in split.items()},
        "top": [(pkg, round(t / N * 1000, 3)) for pkg, t in layers.top_packages(stats)],
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    cols = [layer for layer in layers.LAYERS if any(r["layers_ms"][layer] >= 0.0005 for r in rows)]
    print("\n== in-process CPU per request by layer (ms, and % of the request; PostgreSQL + Redis) ==")
    head = f"{'endpoint':<34}{'CPU ms':>8}{'wall ms':>9}" + "".join(f"{c:>15}" for c in cols)
    print(head)
    for r in rows:
        cells = "".join(
            f"{r['layers_ms'][c]:>7.3f} {r['layers_ms'][c] / r['cpu_ms']:>5.0%}  " if r["cpu_ms"] else ""
            for c in cols
        )
        print(f"{r['name']:<34}{r['cpu_ms']:>8.3f}{r['wall_ms']:>9.3f} {cells}")
    for r in rows:
        top = ", ".join(f"{p} {t:.3f}" for p, t in r["top"])
        print(f"  {r['name']}: profiled {r['profiled_ms']:.3f} ms; most own time (profiled ms): {top}")
    print(flush=True)


def main() -> dict[str, Any]:
    from bench.voucher import make_users, offline_codes, pre_issue

    with pg_lock(), Server(postgres=True, env={"YIBAO_VOUCHER_TTL": "300"}) as srv:
        total = WARM + 2 * N
        tokens = make_users(srv, 8, device="prof")
        yo1_tokens = make_users(srv, 2 + total // 32, birth="19850505", device="prof-yo1")
        inst = srv.demo["institutions"]["pharmacy"]
        codes = pre_issue(srv.url, tokens, total)
        orders = pay_bench.prepare(srv, orders=total, prior=10, history=10, probe=0, warm=0)
        hosp = hospital.prepare(srv, orders=total, history=10, probe=0, warm=0)
        app = setup_app(srv)

        def healthz(n: int) -> list[Environ]:
            return [environ("GET", "/healthz", {}) for _ in range(n)]

        def issuance(n: int) -> list[Environ]:
            return [
                environ("POST", "/api/v1/vouchers", {"Authorization": f"Bearer {tokens[i % len(tokens)]}"})
                for i in range(n)
            ]

        def verification(code_list: list[str]) -> Callable[[int], list[Environ]]:
            def make(n: int) -> list[Environ]:
                out = []
                for i, code in enumerate(code_list[:n]):
                    body = json.dumps(
                        {
                            "qr_content": code,
                            "business_type": "02121",
                            "operator_id": "op-1",
                            "operator_name": "bench",
                            "device_id": "dev-prof",
                            "out_biz_no": f"prof-{i}-{time.time_ns()}",
                        }
                    ).encode()
                    path = "/api/v1/verifications"
                    h = signed_headers(inst["key_id"], inst["secret"], "POST", path, body)
                    out.append(environ("POST", path, h, body))
                return out

            return make

        def paying(creds: dict[str, Any], label: str) -> Callable[[int], list[Environ]]:
            def make(n: int) -> list[Environ]:
                return [
                    environ(m, p, h, b)
                    for m, p, h, b in pay_bench.pay_requests(
                        0, {"orders": creds[label][:n], "clients": 1, **creds}
                    )
                ]

            return make

        rows = [
            measure(app, "GET /healthz (bare)", healthz, "200"),
            measure(app, "POST /vouchers (issuance)", issuance, "201"),
            measure(app, "POST /verifications (signed)", verification(codes), "200"),
            measure(app, "POST …/pay", paying(orders, "load"), "200"),
            measure(app, "POST …/pay (hospital settlement)", paying(hosp, "load"), "200"),
        ]
        # Offline codes last and freshly made: they are accepted for one step either side of theirs.
        yo1 = offline_codes(srv, yo1_tokens, device="prof-yo1")
        rows.insert(3, measure(app, "POST /verifications (YO1 offline)", verification(yo1), "200"))
        app.extensions["yibao.db"]["engine"].dispose()
    print_table(rows)
    return {"rows": rows}


if __name__ == "__main__":
    main()
