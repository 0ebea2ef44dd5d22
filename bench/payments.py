"""Payments benchmark, on SQLite + embedded Valkey and on PostgreSQL + Redis: `pay` under concurrent load vs
the bare endpoint; the same load with 20 active fund-supervision rules on the orders' drug (issue 16: at most
15 % slower); one payment at 10 vs 100 000 prior ledger entries in the account; one payment (20 rules active)
of a person with 10 vs 100 000 earlier orders of the rules' drug; and the hospital settlement's pay
(bench/hospital.py, issue 15). `python -m bench payments`.

After seeding, the bench database is VACUUM (ANALYZE)d (bench.seed.vacuum), as autovacuum would have
done to a real database: index-only scans (supervision's window sums) need the visibility map.

Environment knobs:
  BENCH_PAY_DURATION   seconds per load run (default 10)
  BENCH_PAY_CLIENTS    concurrent client processes (default 8)
  BENCH_PAY_WORKERS    gunicorn workers (default 4)
  BENCH_PAY_ORDERS     orders prepared for each load run (default 12000; two runs: no rules, 20 rules)
  BENCH_PAY_PRIOR      prior entries of the "big" account (default 100000)
  BENCH_PAY_HISTORY    earlier orders of the "big" person in the supervision probe (default 100000)
  BENCH_PAY_HISTORY_DAYS  days those earlier orders are spread over, ending now (default 365)
  BENCH_PAY_PROBE      sequential payments per probe account (default 200)
  BENCH_PAY_SQLITE     0 to skip the SQLite + embedded Valkey part
  BENCH_PAY_PG         0 to skip the PostgreSQL + Redis part
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from bench import hospital
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
from bench.seed import dispose, id_number, insert_orders, setup_app, trace_code, vacuum

DURATION = float(os.environ.get("BENCH_PAY_DURATION", 10))
CLIENTS = int(os.environ.get("BENCH_PAY_CLIENTS", 8))
WORKERS = int(os.environ.get("BENCH_PAY_WORKERS", 4))
ORDERS = int(os.environ.get("BENCH_PAY_ORDERS", 12000))
PRIOR = int(os.environ.get("BENCH_PAY_PRIOR", 100_000))
HISTORY = int(os.environ.get("BENCH_PAY_HISTORY", 100_000))
HISTORY_DAYS = float(os.environ.get("BENCH_PAY_HISTORY_DAYS", 365))
PAYERS = 200  # payments spread over many accounts, as in real traffic (one account serializes on its row)
# sequential payments per account in the prior-entries and history measurements
PROBE = int(os.environ.get("BENCH_PAY_PROBE", 200))
WARM = 400  # warm-up pays, not reported
RULES = 20  # active supervision rules in the second load run, all on the orders' drug, never broken
RULES_TARGET = 0.15  # pay with RULES rules may be at most this much slower (p50) than with none
PAY_TARGET = 0.30  # issue 12: pay >= 30 % of bare on PostgreSQL + Redis (SQLite at least as good)
P99_TARGET = 5.0  # issue 12: pay p99 < 5x bare p99
DRUG = "XA01"


@prebuilt
def pay_requests(index: int, args: dict) -> Iterator[Request]:
    """Each client pays its own slice of the prepared orders, each with a fresh Idempotency-Key
    (args["prefix"]: before the path, e.g. /one for bench/floor_app.py's variant)."""
    prefix = args.get("prefix", "")
    for order_id in args["orders"][index :: args["clients"]]:
        path = f"{prefix}/api/v1/payment-orders/{order_id}/pay"
        headers = signed_headers(args["key_id"], args["secret"], "POST", path, b"")
        headers["Idempotency-Key"] = secrets.token_hex(12)
        yield "POST", path, headers, b""


def _v1_order(label: str, pid: int) -> dict[str, Any]:
    paid = label == "history"
    return {
        "status": "paid" if paid else "created",
        "paid_at": None,
        "drug_fen": 2590,
        "delivery_fee_fen": 600,
        "total_fen": 3190,
        "account_pay_fen": 2590,
        "mutual_aid_pay_fen": 0,
        "cash_pay_fen": 600,
    }


def _v1_items(label: str, oid: int) -> list[dict[str, Any]]:
    return [
        {
            "order_id": oid,
            "line_no": 1,
            "drug_code": DRUG,
            "drug_name": "布洛芬缓释胶囊",
            "otc": True,
            "quantity": 1,
            "unit_price_fen": 2590,
            # one boxed drug per order: every pay also settles a traceability code
            "trace_codes": [] if label == "history" else [trace_code()],
        }
    ]


def _prior_entries(uow: Any, person_id: int, n: int) -> None:
    """A balanced run of +1/-1 legs on the person's account (balance unchanged)."""
    from sqlalchemy import insert, select

    from payments.models import Account, Entry, LedgerTransaction
    from yibao.db import utcnow

    acct = uow.session.scalar(select(Account.id).where(Account.person_id == person_id))
    txn = LedgerTransaction(kind="contribution", memo="bench prior entries", sealed=False)
    uow.session.add(txn)
    uow.session.flush()
    now = utcnow()
    rows = [
        {"transaction_id": txn.id, "account_id": acct, "amount_fen": 1 if i % 2 else -1, "created_at": now}
        for i in range(n)
    ]
    for i in range(0, len(rows), 10_000):
        uow.session.execute(insert(Entry), rows[i : i + 10_000])
    uow.session.execute(
        LedgerTransaction.__table__.update().where(LedgerTransaction.id == txn.id).values(sealed=True)
    )


def seed_history(uow: Any, *, person_id: int, institution_id: int, n: int, days: float) -> int:
    """n earlier paid orders of DRUG for the person, as pay records them: the order, its item and the
    supervision sale the order rules count (supervision_sales, one unit, sold_at spread evenly over the
    last `days`). Returns how many of them fall in the widest rule window (RULES days)."""
    from sqlalchemy import insert

    from supervision.models import Sale
    from yibao.db import utcnow

    now = utcnow()
    step = timedelta(days=days) / max(n, 1)
    stamps = [now - timedelta(seconds=1) - step * i for i in range(n)]

    def sales(uow: Any, rows: list[tuple[str, int, int, str]]) -> None:
        stamp = iter(stamps[: len(rows)])
        del stamps[: len(rows)]
        batch: list[dict[str, Any]] = []
        for _, pid, _oid, po in rows:
            batch.append(
                {
                    "person_id": pid,
                    "code": DRUG,
                    "institution_id": institution_id,
                    "order_ref": po,
                    "quantity": 1,
                    "released": 0,
                    "sold_at": next(stamp),
                }
            )
        uow.session.execute(insert(Sale), batch)

    insert_orders(
        uow,
        [("history", person_id)] * n,
        institution_id=institution_id,
        purpose="online_otc",
        order_row=lambda label, pid: {**_v1_order(label, pid), "paid_at": now},
        items_of=_v1_items,
        grant_source="pay_auth",
        now=now,
        extra=sales,
    )
    widest = timedelta(days=RULES)
    return sum(1 for i in range(n) if timedelta(seconds=1) + step * i < widest)


def prepare(
    srv: Server,
    *,
    orders: int = ORDERS,
    prior: int = PRIOR,
    history: int = HISTORY,
    probe: int = PROBE,
    warm: int = WARM,
) -> dict[str, Any]:
    """Institution, payers, orders, prior ledger entries and order history, bulk-inserted."""
    from yibao.db import db, utcnow
    from yibao.registry import services as registry

    app = setup_app(srv)
    with app.app_context():
        with db.uow() as uow:
            _, creds = registry.create_institution(
                uow, name="压测线上药房", kind="online_pharmacy", region="110100", services=["online_otc"]
            )
            payers = [
                registry.create_person(
                    uow,
                    name=f"压测{n}",
                    id_number=id_number(n),
                    insurance_type="employee",
                    insured_region="110100",
                    personal_account_balance_fen=10**12,
                ).id
                for n in range(PAYERS + 4)
            ]
            inst_id = registry.institution_by_org_id(uow, creds.org_id).id
            uow.commit()
        small, big, hist_small, hist_big = payers[-4:]
        with db.uow() as uow:
            _prior_entries(uow, small, 10)
            _prior_entries(uow, big, prior)
            uow.commit()
        in_window = {}
        with db.uow() as uow:
            in_window["small"] = seed_history(
                uow, person_id=hist_small, institution_id=inst_id, n=10, days=HISTORY_DAYS
            )
            in_window["big"] = seed_history(
                uow, person_id=hist_big, institution_id=inst_id, n=history, days=HISTORY_DAYS
            )
            uow.commit()
        plan = [(kind, payers[i % PAYERS]) for kind in ("load", "rules") for i in range(orders)]
        plan += [("warm", payers[i % PAYERS]) for i in range(warm)]
        plan += [("small", small)] * probe + [("big", big)] * probe
        plan += [("hist_small", hist_small)] * probe + [("hist_big", hist_big)] * probe
        with db.uow() as uow:
            ids = insert_orders(
                uow,
                plan,
                institution_id=inst_id,
                purpose="online_otc",
                order_row=_v1_order,
                items_of=_v1_items,
                grant_source="pay_auth",
                now=utcnow(),
            )
            uow.commit()
    dispose(app)
    return {"key_id": creds.key_id, "secret": creds.secret, "in_window": in_window, **ids}


def add_rules(srv: Server, n: int) -> list[str]:
    """n enabled rules on DRUG (the orders' drug) that no order breaks: every pay then evaluates them
    all (the person's lock and one range read of their sales of the drug in the widest window)."""
    from supervision import rules
    from yibao.db import db

    app = setup_app(srv)
    ids = []
    with app.app_context(), db.uow() as uow:
        for i in range(n):
            if i % 2:
                kind, params = "repeat_purchase", {"window_days": 1 + i, "max_institutions": 1000}
            else:
                kind, params = "quantity_limit", {"window_days": 1 + i, "max_quantity": 10**6}
            params["drug_code"] = DRUG
            ids.append(
                rules.create_rule(uow, kind=kind, params=params, action="block", operator="bench").rule_id
            )
        uow.commit()
    dispose(app)
    return ids


def set_rules(srv: Server, rule_ids: list[str], enabled: bool) -> None:
    """Enable or disable the bench's rules (as an operator would: audited, effective at once)."""
    from supervision import rules
    from yibao.db import db

    app = setup_app(srv)
    with app.app_context(), db.uow() as uow:
        for rule_id in rule_ids:
            rules.set_enabled(uow, rule_id, enabled, operator="bench")
        uow.commit()
    dispose(app)


def sequential(srv: Server, orders: list[str], creds: dict[str, str]) -> Stats:
    """One client paying `orders` one after the other: the cost of one payment."""
    return load(
        srv.url,
        "bench.payments:pay_requests",
        clients=1,
        duration=300,
        args={"orders": orders, "clients": 1, **creds},
        max_requests_per_client=len(orders),
    )


PROBE_ROUNDS = 4  # a pair of probes alternates in this many rounds (small, big, small, big...)


def alternating(a: list[str], b: list[str], rounds: int = PROBE_ROUNDS) -> list[tuple[int, list[str]]]:
    """The two probes' orders as alternating chunks [(0, a's 1st), (1, b's 1st), (0, a's 2nd), ...]: a
    drift of the machine over the probes (autovacuum after the load runs, a neighbour) then falls on
    both sides alike instead of on whichever ran last."""
    out: list[tuple[int, list[str]]] = []
    for r in range(rounds):
        for side, orders in enumerate((a, b)):
            chunk = orders[len(orders) * r // rounds : len(orders) * (r + 1) // rounds]
            if chunk:
                out.append((side, chunk))
    return out


def sequential_pair(srv: Server, a: list[str], b: list[str], creds: dict[str, str]) -> tuple[Stats, Stats]:
    """One payment at a time of `a` and of `b` (the cost of one payment of each), alternating in
    PROBE_ROUNDS rounds; each side's rounds pooled."""
    got: list[Stats | None] = [None, None]
    for side, chunk in alternating(a, b):
        stats = sequential(srv, chunk, creds)
        got[side] = stats if got[side] is None else pooled(got[side], stats)  # type: ignore[arg-type]
    assert got[0] is not None and got[1] is not None
    return got[0], got[1]


def verdict(ok: bool) -> str:
    return "MEETS" if ok else "MISSES"


def bench_server(postgres: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with Server(postgres=postgres, workers=WORKERS) as srv:
        t0 = time.time()
        data = prepare(srv)
        hosp = hospital.prepare(srv)
        vacuum(srv)  # as autovacuum would have: statistics, and the visibility map index-only scans need
        print(
            f"\n[{srv.label}] prepared {ORDERS} orders x2, {PRIOR} prior entries, {HISTORY} earlier orders, "
            f"{hospital.ORDERS} hospital orders, {hospital.HISTORY} earlier settlements "
            f"in {time.time() - t0:.0f} s",
            flush=True,
        )
        creds = {"key_id": data["key_id"], "secret": data["secret"]}

        def pay_load(orders: list[str]) -> Stats:
            args = {"orders": orders, "clients": CLIENTS, **creds}
            return load(
                srv.url, "bench.payments:pay_requests", clients=CLIENTS, duration=DURATION / 2, args=args
            )

        # Warm-up (not reported): every worker's connections, statements and code paths.
        pay_load(data["warm"])
        hospital.load_run(srv, hosp, "warm", clients=CLIENTS, duration=DURATION / 4)
        half = len(data["load"]) // 2
        base_before = bare_baseline(srv.url, clients=CLIENTS, duration=DURATION / 2)
        plain_1 = pay_load(data["load"][:half])
        hstats = hospital.load_run(srv, hosp, "load", clients=CLIENTS, duration=DURATION)
        # Supervision cost: no rules and RULES rules alternate (off, on, off, on; each half a run) so
        # that the background load of a shared machine falls on both sides alike.
        rule_ids = add_rules(srv, RULES)
        ruled_1 = pay_load(data["rules"][:half])
        set_rules(srv, rule_ids, False)
        plain_2 = pay_load(data["load"][half:])
        set_rules(srv, rule_ids, True)
        ruled_2 = pay_load(data["rules"][half:])
        base_after = bare_baseline(srv.url, clients=CLIENTS, duration=DURATION / 2)
        base = pooled(base_before, base_after)
        stats, ruled = pooled(plain_1, plain_2), pooled(ruled_1, ruled_2)
        print_header(srv, base)
        results["bare"] = base.as_dict()
        results["pay"] = report("POST /payment-orders/{id}/pay", stats, base, target_ratio=PAY_TARGET)
        results["pay_p99_met"] = p99_ok = stats.p99 < P99_TARGET * base.p99
        print(
            f"pay p99 {stats.p99:.2f} ms vs {P99_TARGET:.0f}x bare p99 {P99_TARGET * base.p99:.2f} ms: "
            f"{verdict(p99_ok)}",
            flush=True,
        )
        results["hospital_pay"] = report(
            "POST …/pay (hospital settlement)", hstats, base, target_ratio=PAY_TARGET
        )
        results["hospital_pay_p99_met"] = hp99 = hstats.p99 < P99_TARGET * base.p99
        print(
            f"settlement pay p99 {hstats.p99:.2f} ms vs {P99_TARGET:.0f}x bare p99: {verdict(hp99)}",
            flush=True,
        )
        results["pay_rules"] = report(f"POST …/pay, {RULES} supervision rules", ruled, base)
        slower = ruled.p50 / stats.p50 - 1 if stats.p50 else float("nan")
        rps_slower = 1 - ruled.rps / stats.rps if stats.rps else float("nan")
        rules_ok = rps_slower <= RULES_TARGET
        print(
            f"pay with {RULES} active rules vs none: {ruled.rps:.1f} vs {stats.rps:.1f} req/s "
            f"({rps_slower:+.1%} fewer), p50 {ruled.p50:.2f} vs {stats.p50:.2f} ms ({slower:+.1%}): "
            f"{verdict(rules_ok)} the {RULES_TARGET:.0%} target (on req/s)",
            flush=True,
        )
        results["rules_slowdown_p50"] = round(slower, 3)
        results["rules_slowdown_rps"] = round(rps_slower, 3)
        results["rules_target_met"] = rules_ok

        for a, b in (("small", "big"), ("hist_small", "hist_big")):
            sa, sb = sequential_pair(srv, data[a], data[b], creds)
            results[f"seq_{a}"], results[f"seq_{b}"] = sa.as_dict(), sb.as_dict()
        s, b = results["seq_small"], results["seq_big"]
        print(
            f"one payment, 10 prior ledger entries:      p50 {s['p50_ms']:.2f} ms  p99 {s['p99_ms']:.2f} ms\n"
            f"one payment, {PRIOR} prior ledger entries:  p50 {b['p50_ms']:.2f} ms  p99 {b['p99_ms']:.2f} ms "
            f"(ratio {b['p50_ms'] / s['p50_ms']:.2f})",
            flush=True,
        )
        s, b = results["seq_hist_small"], results["seq_hist_big"]
        iw = data["in_window"]
        results["history_ratio"] = round(b["p50_ms"] / s["p50_ms"], 2)
        print(
            f"one payment, {RULES} rules, 10 earlier orders ({iw['small']} in the widest window):       "
            f"p50 {s['p50_ms']:.2f} ms  p99 {s['p99_ms']:.2f} ms\n"
            f"one payment, {RULES} rules, {HISTORY} earlier orders ({iw['big']} in the widest window): "
            f"p50 {b['p50_ms']:.2f} ms  p99 {b['p99_ms']:.2f} ms (ratio {results['history_ratio']:.2f})",
            flush=True,
        )
        results.update(hospital.probes(srv, hosp))
    return results


def main() -> dict[str, Any]:
    out: dict[str, Any] = {}
    if os.environ.get("BENCH_PAY_SQLITE", "1") != "0":
        out["sqlite"] = bench_server(postgres=False)
    if os.environ.get("BENCH_PAY_PG", "1") != "0":
        with pg_lock():
            out["postgres"] = bench_server(postgres=True)
    print("\npayments bench summary:", json.dumps(out, default=str))
    return out


if __name__ == "__main__":
    main()
