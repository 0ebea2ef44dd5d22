"""Payments benchmark: `pay` on PostgreSQL+Redis under concurrent load vs the bare endpoint, the same load
with 20 active fund-supervision rules on the orders' drug (target: at most 15 % slower), and the cost of
one payment at 10 vs 100 000 prior ledger entries in the account. `python -m bench payments`.

Environment knobs:
  BENCH_PAY_DURATION   seconds per load run (default 10)
  BENCH_PAY_CLIENTS    concurrent client processes (default 8)
  BENCH_PAY_WORKERS    gunicorn workers (default 4)
  BENCH_PAY_ORDERS     orders prepared for each load run (default 40000; two runs: no rules, 20 rules)
  BENCH_PAY_PRIOR      prior entries of the "big" account (default 100000)
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from bench.harness import Request, Server, bare_baseline, load, print_header, report, signed_headers

DURATION = float(os.environ.get("BENCH_PAY_DURATION", 10))
CLIENTS = int(os.environ.get("BENCH_PAY_CLIENTS", 8))
WORKERS = int(os.environ.get("BENCH_PAY_WORKERS", 4))
ORDERS = int(os.environ.get("BENCH_PAY_ORDERS", 40000))
PRIOR = int(os.environ.get("BENCH_PAY_PRIOR", 100_000))
PAYERS = 200  # payments spread over many accounts, as in real traffic (one account serializes on its row)
PROBE = 400  # sequential payments per account in the prior-entries measurement
RULES = 20  # active supervision rules in the second load run, all on the orders' drug, never broken
RULES_TARGET = 0.15  # pay with RULES rules may be at most this much slower (p50) than with none
PG_LOCK = "/tmp/yibao-pg.lock"  # noqa: S108 - the shared lock every helper takes for the machine PostgreSQL


@contextmanager
def pg_lock() -> Iterator[None]:
    with open(PG_LOCK, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def pay_requests(index: int, args: dict) -> Iterator[Request]:
    """Each client pays its own slice of the prepared orders, each with a fresh Idempotency-Key."""
    for order_id in args["orders"][index :: args["clients"]]:
        path = f"/api/v1/payment-orders/{order_id}/pay"
        headers = signed_headers(args["key_id"], args["secret"], "POST", path, b"")
        headers["Idempotency-Key"] = secrets.token_hex(12)
        yield "POST", path, headers, b""


def _id_number(n: int) -> str:
    from yibao.registry.validators import id_check_digit

    first17 = f"110101{19700101 + n % 28:08d}{n % 1000:03d}"
    return first17 + id_check_digit(first17)


def _setup_app(srv: Server) -> Any:
    from yibao import create_app

    return create_app(
        {
            "DATABASE_URL": srv.database_url,
            "REDIS_URL": srv.redis_url,
            "SECRET_KEY": (srv.instance / "secret_key").read_text().strip(),
            "LOG_LEVEL": "WARNING",
            "JSON_LOGS": False,
        }
    )


def prepare(srv: Server) -> dict[str, Any]:
    """Institution, payers and orders, bulk-inserted straight into the database (setup speed only)."""
    from sqlalchemy import insert, select

    from payments.models import Account, Entry, LedgerTransaction, OrderItem, PaymentGrant, PaymentOrder
    from yibao.db import db, utcnow
    from yibao.registry import services as registry

    app = _setup_app(srv)
    with app.app_context():
        with db.uow() as uow:
            _, creds = registry.create_institution(
                uow, name="压测线上药房", kind="online_pharmacy", region="110100", services=["online_otc"]
            )
            payers = []
            for n in range(PAYERS + 2):
                p = registry.create_person(
                    uow,
                    name=f"压测{n}",
                    id_number=_id_number(n),
                    insurance_type="employee",
                    insured_region="110100",
                    personal_account_balance_fen=10**12,
                )
                payers.append(p.id)
            inst_id = registry.institution_by_org_id(uow, creds.org_id).id
            uow.commit()
        small, big = payers[-2], payers[-1]
        with db.uow() as uow:
            # Prior entries: a balanced run of +1/-1 legs on the account (balance unchanged),
            # 10 for the small account, PRIOR for the big one.
            for pid, n in ((small, 10), (big, PRIOR)):
                acct = uow.session.scalar(select(Account.id).where(Account.person_id == pid))
                txn = LedgerTransaction(kind="contribution", memo="bench prior entries", sealed=False)
                uow.session.add(txn)
                uow.session.flush()
                now = utcnow()
                rows = [
                    {
                        "transaction_id": txn.id,
                        "account_id": acct,
                        "amount_fen": 1 if i % 2 else -1,
                        "created_at": now,
                    }
                    for i in range(n)
                ]
                for i in range(0, len(rows), 10_000):
                    uow.session.execute(insert(Entry), rows[i : i + 10_000])
                uow.session.execute(
                    LedgerTransaction.__table__.update()
                    .where(LedgerTransaction.id == txn.id)
                    .values(sealed=True)
                )
            uow.commit()
        plan = [(kind, payers[i % PAYERS]) for kind in ("load", "rules") for i in range(ORDERS)]
        plan += [("small", small)] * PROBE + [("big", big)] * PROBE
        ids: dict[str, list[str]] = {"load": [], "rules": [], "small": [], "big": []}
        now = utcnow()
        with db.uow() as uow:
            for start in range(0, len(plan), 5000):
                chunk = plan[start : start + 5000]
                grants = [
                    {
                        "grant_key": "pa_" + secrets.token_urlsafe(24),
                        "source": "pay_auth",
                        "purpose": "online_otc",
                        "person_id": pid,
                        "expires_at": now + timedelta(minutes=5),
                        "used_at": now,
                        "created_at": now,
                    }
                    for _, pid in chunk
                ]
                grant_ids = uow.session.scalars(insert(PaymentGrant).returning(PaymentGrant.id), grants).all()
                orders = []
                for (kind, pid), gid in zip(chunk, grant_ids, strict=True):
                    po = "po_" + secrets.token_urlsafe(18)
                    ids[kind].append(po)
                    orders.append(
                        {
                            "pay_order_id": po,
                            "institution_id": inst_id,
                            "payer_person_id": pid,
                            "grant_id": gid,
                            "purpose": "online_otc",
                            "merchant_order_no": po,
                            "account_only": False,
                            "status": "created",
                            "drug_fen": 2590,
                            "delivery_fee_fen": 600,
                            "total_fen": 3190,
                            "account_pay_fen": 2590,
                            "mutual_aid_pay_fen": 0,
                            "cash_pay_fen": 600,
                            "refunded_fen": 0,
                            "account_refunded_fen": 0,
                            "mutual_aid_refunded_fen": 0,
                            "cash_refunded_fen": 0,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                order_ids = uow.session.scalars(insert(PaymentOrder).returning(PaymentOrder.id), orders).all()
                uow.session.execute(
                    insert(OrderItem),
                    [
                        {
                            "order_id": oid,
                            "line_no": 1,
                            "drug_code": "XA01",
                            "drug_name": "布洛芬缓释胶囊",
                            "otc": True,
                            "quantity": 1,
                            "unit_price_fen": 2590,
                            # one boxed drug per order: every pay also settles a traceability code
                            "trace_codes": ["9" + "".join(secrets.choice("0123456789") for _ in range(19))],
                        }
                        for oid in order_ids
                    ],
                )
            uow.commit()
    app.extensions["yibao.db"]["engine"].dispose()
    return {"key_id": creds.key_id, "secret": creds.secret, **ids}


def add_rules(srv: Server, n: int) -> None:
    """n enabled rules on XA01 (the orders' drug) that no order breaks: every pay then evaluates them
    all (the person's lock and one range read of their XA01 sales)."""
    from supervision import rules
    from yibao.db import db

    app = _setup_app(srv)
    with app.app_context(), db.uow() as uow:
        for i in range(n):
            if i % 2:
                kind, params = "repeat_purchase", {"window_days": 1 + i, "max_institutions": 1000}
            else:
                kind, params = "quantity_limit", {"window_days": 1 + i, "max_quantity": 10**6}
            params["drug_code"] = "XA01"
            rules.create_rule(uow, kind=kind, params=params, action="block", operator="bench")
        uow.commit()
    app.extensions["yibao.db"]["engine"].dispose()


def main() -> None:
    results: dict[str, Any] = {}
    with pg_lock(), Server(postgres=True, workers=WORKERS) as srv:
        t0 = time.time()
        data = prepare(srv)
        print(f"prepared {ORDERS} orders and {PRIOR} prior entries in {time.time() - t0:.0f} s", flush=True)
        base = bare_baseline(srv.url, clients=CLIENTS, duration=DURATION)
        print_header(srv, base)
        creds = {"key_id": data["key_id"], "secret": data["secret"]}
        args = {"orders": data["load"], "clients": CLIENTS, **creds}
        stats = load(srv.url, "bench.payments:pay_requests", clients=CLIENTS, duration=DURATION, args=args)
        results["pay"] = report("POST /payment-orders/{id}/pay", stats, base, target_ratio=0.3)
        p99_ok = stats.p99 < 5 * base.p99
        verdict = "MEETS" if p99_ok else "MISSES"
        print(f"p99 {stats.p99:.2f} ms vs 5x bare p99 {5 * base.p99:.2f} ms: {verdict}", flush=True)
        results["bare"] = base.as_dict()
        results["p99_target_met"] = p99_ok
        add_rules(srv, RULES)
        args = {"orders": data["rules"], "clients": CLIENTS, **creds}
        ruled = load(srv.url, "bench.payments:pay_requests", clients=CLIENTS, duration=DURATION, args=args)
        results["pay_rules"] = report(f"POST …/pay, {RULES} supervision rules", ruled, base)
        slower = ruled.p50 / stats.p50 - 1 if stats.p50 else float("nan")
        rules_ok = slower <= RULES_TARGET
        print(
            f"pay with {RULES} active rules vs none: p50 {ruled.p50:.2f} vs {stats.p50:.2f} ms "
            f"({slower:+.1%}), {ruled.rps:.1f} vs {stats.rps:.1f} req/s: "
            f"{'MEETS' if rules_ok else 'MISSES'} the {RULES_TARGET:.0%} target",
            flush=True,
        )
        results["rules_slowdown_p50"] = round(slower, 3)
        results["rules_target_met"] = rules_ok
        for label in ("small", "big"):
            a = {"orders": data[label], "clients": 1, **creds}
            s = load(
                srv.url,
                "bench.payments:pay_requests",
                clients=1,
                duration=120,
                args=a,
                max_requests_per_client=PROBE,
            )
            results[f"prior_{label}"] = s.as_dict()
        small, big = results["prior_small"], results["prior_big"]
        print(
            f"one payment, 10 prior entries:     p50 {small['p50_ms']:.2f} ms  p99 {small['p99_ms']:.2f} ms\n"
            f"one payment, {PRIOR} prior entries:  p50 {big['p50_ms']:.2f} ms  p99 {big['p99_ms']:.2f} ms  "
            f"(ratio {big['p50_ms'] / small['p50_ms']:.2f})",
            flush=True,
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
