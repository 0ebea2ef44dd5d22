"""Run the benchmarks: `python -m bench` (all) or `python -m bench voucher payments cluster profile floor`.

Each suite prints its own figures; at the end the targets of issues 12, 14, 15 and 16 are printed once
more, met or not, from the suites that ran, and the lean floor's ratios (bench/floor.py: what the
irreducible work alone reaches on this machine; informational, not a target).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from typing import Any

SUITES = ("voucher", "payments", "cluster", "profile", "floor")
FLAT = 1.25  # "does not grow with history": p50 at the large history at most this many times the small one
MEMORY_KIB = 4096  # "worker memory flat": no gunicorn process grows by more than this over the long run


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _commit() -> str:
    """The commit measured (BENCH_COMMIT when run from an exported copy of the tree)."""
    if os.environ.get("BENCH_COMMIT"):
        return os.environ["BENCH_COMMIT"]
    try:
        return subprocess.run(  # noqa: S603
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, figure, met) for every target whose figures were measured."""
    rows: list[tuple[str, str, bool | None]] = []

    def ratio(label: str, r: dict[str, Any] | None, target: float) -> None:
        if r:
            rows.append(
                (
                    f"{label} >= {target:.0%} of bare",
                    f"{r['ratio']:.1%} ({r['rps']} req/s)",
                    r["ratio"] >= target,
                )
            )

    v, p = results.get("voucher", {}), results.get("payments", {})
    for db, name in (("postgres", "PostgreSQL + Redis"), ("sqlite", "SQLite + Valkey")):
        vd, pd = v.get(db, {}), p.get(db, {})
        ratio(f"{name}: issuance", vd.get("issuance"), 0.60)
        ratio(f"{name}: verification, signed codes", vd.get("verification"), 0.40)
        ratio(f"{name}: verification, YO1 codes", vd.get("verification_yo1"), 0.40)
        ratio(f"{name}: pay", pd.get("pay"), 0.30)
        if pd:
            rows.append(
                (f"{name}: pay p99 < 5x bare p99", f"{pd['pay']['p99_ratio']:.1f}x", pd["pay_p99_met"])
            )
        ratio(f"{name}: settlement pay", pd.get("hospital_pay"), 0.30)
        if pd:
            hp = pd["hospital_pay"]
            rows.append(
                (
                    f"{name}: settlement pay p99 < 5x bare",
                    f"{hp['p99_ratio']:.1f}x",
                    pd["hospital_pay_p99_met"],
                )
            )
            rows.append(
                (
                    f"{name}: pay with 20 rules <= 15 % slower",
                    f"{pd['rules_slowdown_rps']:+.1%} req/s, {pd['rules_slowdown_p50']:+.1%} p50",
                    pd["rules_target_met"],
                )
            )
            for key, what in (
                ("seq_", "pay at 10 vs 100 000 prior ledger entries"),
                ("history_ratio", "pay (20 rules) at 10 vs many earlier orders"),
                ("settlement_history_ratio", "settlement at 10 vs 10 000 earlier settlements"),
            ):
                if key == "seq_":
                    r = round(pd["seq_big"]["p50_ms"] / pd["seq_small"]["p50_ms"], 2)
                else:
                    r = pd[key]
                rows.append((f"{name}: {what}, p50 ratio <= {FLAT}", f"{r:.2f}", r <= FLAT))
        mem = vd.get("memory")
        if mem:
            worst = max(mem["rss_growth_kib"])
            rows.append(
                (
                    f"{name}: worker RSS growth < {MEMORY_KIB} KiB over {mem['verifications']} verifications",
                    f"max {worst} KiB",
                    worst < MEMORY_KIB,
                )
            )
    if v.get("qr"):
        rows.append(("QR PNG <= 3x zxing-cpp", f"{v['qr']['ratio']:.1f}x", v["qr"]["ratio"] <= 3))
    c = results.get("cluster", {})
    for key in ("issuance", "verification"):
        if f"{key}_cluster_vs_single" in c:
            cl = c["cluster"][key]
            rows.append(
                (
                    f"Redis Cluster: {key} (reported, no target)",
                    f"{cl['ratio']:.1%} of bare; {c[f'{key}_cluster_vs_single']:.2f}x single node",
                    None,
                )
            )
    return rows


def floor_line(f: dict[str, Any]) -> str:
    """The closing line of the floor suite (bench/floor.py)."""
    v, vf, p = f["verification"], f["verification_flask"], f["pay"]
    line = (
        "floor     the irreducible work alone (bench/floor_app.py, the same gunicorn) reaches "
        f"{v['ratio']:.1%} (verification, raw WSGI; {vf['ratio']:.1%} as a minimal Flask view) / "
        f"{p['ratio']:.1%} (pay) of its own bare on this machine"
    )
    if "ratio_to_service_bare" in v:
        line += (
            f", {v['ratio_to_service_bare']:.1%} ({vf['ratio_to_service_bare']:.1%}) / "
            f"{p['ratio_to_service_bare']:.1%} of the service's bare"
        )
    return line + " (targets 40 % / 30 %; informational)"


def main(argv: list[str]) -> int:
    names = argv or list(SUITES)
    started = time.time()
    print(
        f"bench started {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, commit {_commit()}, "
        f"load average {_load()}",
        flush=True,
    )
    results: dict[str, Any] = {}
    for name in names:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            print(f"bench {name}: not available ({exc})")
            continue
        print(f"\n######## bench {name} (load average {_load()}) ########", flush=True)
        results[name] = module.main() or {}
    print(f"\n######## targets (load average at the end {_load()}) ########")
    for target, figure, met in targets(results):
        verdict = "reported" if met is None else ("MET" if met else "NOT MET")
        print(f"{verdict:<9} {target:<72} {figure}")
    if results.get("floor"):
        print(floor_line(results["floor"]))
    print(f"\nbenchmarks finished in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
