"""Voucher benchmark: QR rendering vs zxing-cpp, issuance and verification throughput vs the bare endpoint,
and worker memory over a long verification run. `python -m bench voucher`.

Environment knobs:
  BENCH_VOUCHER_DURATION   seconds per issuance/baseline run (default 10)
  BENCH_VOUCHER_CODES      codes per verification run (default 4000)
  BENCH_VOUCHER_LONG       verifications in the memory run on SQLite (default 20000; the v1 issue's figure
                           is 100000)
  BENCH_VOUCHER_LONG_PG    the same on PostgreSQL (default 5000: verification there is the slowest path of
                           a shared machine, and 20000 took 10 minutes at a load average of 20)
  BENCH_VOUCHER_CLIENTS    concurrent client processes (default 8)
  BENCH_VOUCHER_PG         0 to skip the PostgreSQL+Redis part
  BENCH_VOUCHER_YO1_USERS  persons with an offline credential for the YO1 run (default 64; 32 codes each:
                           16 seqs of the current and of the next 30-s step, the ones the server accepts)
"""

from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import os
import secrets
import statistics
import time
from collections.abc import Iterator
from typing import Any

from bench.harness import (
    Request,
    Server,
    Stats,
    bare_baseline,
    load,
    pg_lock,
    pooled,
    prebuilt,
    print_header,
    report,
    signed_headers,
)

DURATION = float(os.environ.get("BENCH_VOUCHER_DURATION", 10))
CODES = int(os.environ.get("BENCH_VOUCHER_CODES", 4000))
LONG_RUN = int(os.environ.get("BENCH_VOUCHER_LONG", 20000))
LONG_RUN_PG = int(os.environ.get("BENCH_VOUCHER_LONG_PG", 5000))
CLIENTS = int(os.environ.get("BENCH_VOUCHER_CLIENTS", 8))
YO1_USERS = int(os.environ.get("BENCH_VOUCHER_YO1_USERS", 64))
USERS = 8
# Pre-issued codes must outlive the run that spends them; the size of a code does not depend on it.
SERVER_ENV = {"YIBAO_VOUCHER_TTL": "300"}
ISSUANCE_TARGET = 0.60  # issue 12, PostgreSQL + Redis (SQLite + embedded Valkey at least as good)
VERIFICATION_TARGET = 0.40  # issue 12 (signed codes) and issue 14 (YO1 codes)


# ---------------------------------------------------------------- QR rendering


def _time_per_call(fn: Any, n: int) -> float:
    fn()
    best = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best.append((time.perf_counter() - t0) / n * 1000)
    return min(best)


def bench_qr() -> dict[str, float]:
    """PNG of the default token: ours vs zxing-cpp's C++ encoder (vs plain qrcode for reference)."""
    import io

    import qrcode
    import zxingcpp
    from PIL import Image

    from voucher import qr
    from voucher import token as tk

    now = int(time.time())
    header = tk.dumps({"alg": tk.ALG, "kid": "AbCd", "typ": tk.TYP})
    payload = tk.dumps(
        {
            "iss": tk.ISSUER,
            "aud": tk.AUDIENCE,
            "sub": "x4yBMz5L",
            "iat": now,
            "exp": now + 60,
            "jti": "AbCdEfGh",
        }
    )
    content = tk.Parts(header, payload, secrets.token_bytes(64)).qr_content
    version = qr.version_for(content)

    def zx_image() -> Any:
        bc = zxingcpp.create_barcode(content, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
        return bc.to_image(scale=qr.SCALE)

    def zx_png() -> bytes:
        img = zx_image()
        buf = io.BytesIO()
        height, width = img.shape[:2]
        Image.frombytes("L", (width, height), bytes(memoryview(img))).save(buf, "PNG")
        return buf.getvalue()

    def plain_qrcode() -> bytes:
        q = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=qr.SCALE)
        q.add_data(content)
        buf = io.BytesIO()
        q.make_image().save(buf)
        return buf.getvalue()

    ours = _time_per_call(lambda: qr.png(content), 200)
    zx = _time_per_call(zx_image, 200)
    zxp = _time_per_call(zx_png, 100)
    plain = _time_per_call(plain_qrcode, 10)
    print(f"\n== QR PNG of the default token ({len(content)} chars, version {version}-M) ==")
    print(f"zxing-cpp create_barcode + to_image      {zx:7.3f} ms")
    print(f"zxing-cpp + PIL PNG encode               {zxp:7.3f} ms")
    print(
        f"voucher.qr.png (fixed mask, own PNG)     {ours:7.3f} ms   = {ours / zx:4.1f}x zxing-cpp"
        "  (target <= 3x)"
    )
    print(f"plain qrcode, automatic mask, PIL        {plain:7.3f} ms   = {plain / zx:4.1f}x zxing-cpp")
    return {"version": version, "zxing_ms": zx, "ours_ms": ours, "ratio": ours / zx, "plain_ms": plain}


# ---------------------------------------------------------------- HTTP helpers


def _call(url: str, method: str, path: str, body: Any = None, headers: dict | None = None) -> tuple[int, Any]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    data = json.dumps(body).encode() if body is not None else None
    h = {"Content-Type": "application/json"} if data else {}
    h.update(headers or {})
    conn.request(method, path, body=data, headers=h)
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    return resp.status, json.loads(raw) if raw else None


def make_users(srv: Server, n: int, *, birth: str = "19800101", device: str = "bench") -> list[str]:
    """Register and activate n employees (device f"{device}-{i}"); return their access tokens."""
    from tests.support import make_id_number

    tokens = []
    admin = {"Authorization": f"Bearer {srv.admin_token}"}
    for i in range(n):
        idn = make_id_number(birth=birth, seq=900 + i + int(time.time()) % 50)
        name = "赵" + "一二三四五六七八九十"[i % 10] + "甲乙丙丁戊己庚辛壬癸"[i // 10 % 10]
        body = {
            "name": name,
            "id_number": idn,
            "insurance_type": "employee",
            "insured_region": "532900",
            "personal_account_balance_fen": 100000,
        }
        status, _ = _call(srv.url, "POST", "/api/v1/admin/persons", body, admin)
        assert status in (201, 409), status
        _, proof = _call(srv.url, "POST", "/api/v1/sandbox/identity-proofs", {"id_number": idn, "name": name})
        status, act = _call(
            srv.url,
            "POST",
            "/api/v1/activations",
            {
                "id_number": idn,
                "name": name,
                "identity_proof": proof["identity_proof"],
                "device_id": f"{device}-{i}",
            },
        )
        assert status == 201, act
        tokens.append(act["access_token"])
    return tokens


def _issue_worker(url: str, token: str, count: int, out: Any) -> None:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    codes = []
    for _ in range(count):
        conn.request("POST", "/api/v1/vouchers", headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        if resp.status == 201:
            codes.append(body["qr_content"])
    out.put(codes)


def pre_issue(url: str, tokens: list[str], total: int) -> list[str]:
    """Issue `total` codes with one process per user (not measured)."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    per = -(-total // len(tokens))
    procs = [ctx.Process(target=_issue_worker, args=(url, t, per, out)) for t in tokens]
    for p in procs:
        p.start()
    codes = [c for _ in procs for c in out.get()]
    for p in procs:
        p.join()
    return codes


def offline_codes(srv: Server, tokens: list[str], *, device: str) -> list[str]:
    """One offline credential per user, and its YO1 codes the server accepts for the next 30+ s:
    16 seqs of the current step, then 16 of the next (not measured; made as the phone would)."""
    from yibao_client import offline

    creds = []
    for i, token in enumerate(tokens):
        status, cred = _call(
            srv.url,
            "POST",
            "/api/v1/offline-credentials",
            {"device_id": f"{device}-{i}"},
            {"Authorization": f"Bearer {token}"},
        )
        assert status == 201, cred
        creds.append(offline.Credential(cred["credential_id"], cred["secret"]))
    step = offline.step_at(time.time())
    return [
        offline.make_code(c.credential_id, c.secret, step=s, seq=seq)
        for s in (step, step + 1)
        for seq in range(offline.MAX_SEQ + 1)
        for c in creds
    ]


# ---------------------------------------------------------------- load factories (run in client processes)


def issue_requests(index: int, args: dict) -> Iterator[Request]:
    token = args["tokens"][index % len(args["tokens"])]
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        yield "POST", "/api/v1/vouchers", headers, b""


@prebuilt
def verify_requests(index: int, args: dict) -> Iterator[Request]:
    """Each client verifies its own slice of the codes (args["prefix"]: before the path, e.g. /flask)."""
    inst = args["inst"]
    path = args.get("prefix", "") + "/api/v1/verifications"
    for n, code in enumerate(args["codes"][index :: args["clients"]]):
        body = json.dumps(
            {
                "qr_content": code,
                "business_type": "02121",
                "operator_id": "op-1",
                "operator_name": "bench",
                "device_id": f"dev-{index}",
                "out_biz_no": f"b{index}-{n}",
            }
        ).encode()
        yield "POST", path, signed_headers(inst["key_id"], inst["secret"], "POST", path, body), body


def verify_run(srv: Server, tokens: list[str], inst: dict, count: int, codes: list[str] | None = None) -> Any:
    """Verify `count` freshly issued signed codes, or the given (YO1) codes."""
    codes = pre_issue(srv.url, tokens, count) if codes is None else codes
    per = len(codes) // CLIENTS
    return load(
        srv.url,
        "bench.voucher:verify_requests",
        clients=CLIENTS,
        duration=3600,
        args={"codes": codes, "inst": inst, "clients": CLIENTS},
        max_requests_per_client=per,
        ok_statuses=(200,),
    )


# ---------------------------------------------------------------- one server configuration


def throughput(srv: Server, tokens: list[str], inst: dict, yo1_tokens: list[str] | None) -> dict[str, Stats]:
    """Issuance, verification of signed codes (and of YO1 codes) and the bare endpoint, in one sitting."""
    verify_run(srv, tokens, inst, 400)  # warm-up: keys loaded, connections open, code paths hot
    if yo1_tokens:
        verify_run(srv, [], inst, 0, offline_codes(srv, yo1_tokens[:2], device="bench-yo1"))
    # The baseline is measured before and after the runs and pooled: on a shared machine the
    # background load drifts, and a single baseline would favour whichever side met a quiet moment.
    base_before = bare_baseline(srv.url, clients=CLIENTS, duration=DURATION / 2)
    out = {
        "issuance": load(
            srv.url,
            "bench.voucher:issue_requests",
            clients=CLIENTS,
            duration=DURATION,
            args={"tokens": tokens},
            ok_statuses=(201,),
        ),
        "verification": verify_run(srv, tokens, inst, CODES),
    }
    if yo1_tokens:
        out["verification_yo1"] = verify_run(
            srv, [], inst, 0, offline_codes(srv, yo1_tokens, device="bench-yo1")
        )
    base_after = bare_baseline(srv.url, clients=CLIENTS, duration=DURATION / 2)
    out["bare"] = pooled(base_before, base_after)
    return out


NAMES = {
    "issuance": ("POST /vouchers (issuance)", ISSUANCE_TARGET),
    "verification": ("POST /verifications (signed codes)", VERIFICATION_TARGET),
    "verification_yo1": ("POST /verifications (YO1 offline codes)", VERIFICATION_TARGET),
}


def bench_server(postgres: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with Server(postgres=postgres, env=SERVER_ENV) as srv:
        tokens = make_users(srv, USERS)
        yo1_tokens = make_users(srv, YO1_USERS, birth="19850505", device="bench-yo1")
        inst = srv.demo["institutions"]["pharmacy"]
        runs = throughput(srv, tokens, inst, yo1_tokens)
        base = runs["bare"]
        print_header(srv, base)
        for key, (name, target) in NAMES.items():
            results[key] = report(name, runs[key], base, target_ratio=target)
        results["baseline_rps"] = round(base.rps, 1)

        # Memory: RSS of every worker after a warm-up batch and after long_run more verifications.
        rss_before = srv.rss_kb()
        done, batch = 0, 5000
        statuses: dict[int, int] = {}
        long_run = LONG_RUN_PG if postgres else LONG_RUN
        while done < long_run:
            n = min(batch, long_run - done)
            st = verify_run(srv, tokens, inst, n)
            for k, v in st.statuses.items():
                statuses[k] = statuses.get(k, 0) + v
            done += n
        rss_after = srv.rss_kb()
        growth = {pid: rss_after[pid] - rss_before[pid] for pid in rss_before if pid in rss_after}
        print(
            f"memory over {done} verifications (statuses {statuses}): RSS growth per gunicorn process (KiB) "
            f"{sorted(growth.values())}; median {statistics.median(growth.values()):.0f} KiB",
            flush=True,
        )
        results["memory"] = {"verifications": done, "rss_growth_kib": sorted(growth.values())}
    return results


def main() -> dict[str, Any]:
    out = {"qr": bench_qr(), "sqlite": bench_server(postgres=False)}
    if os.environ.get("BENCH_VOUCHER_PG", "1") != "0":
        with pg_lock():
            out["postgres"] = bench_server(postgres=True)
    print("\nvoucher bench summary:", json.dumps(out, default=str))
    return out


if __name__ == "__main__":
    main()
