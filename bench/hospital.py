"""Hospital settlement benchmark (issue 15), run inside the payments suite on the same server: a
settlement's `pay` under load (ratio to the bare endpoint, target as pay's), and one settlement's pay for a
person with 10 vs 10 000 earlier settlements in the year.

Orders are bulk-inserted as `POST /payment-orders` leaves them (grant, order with its provisional split,
items, hospital_settlements row with the categorised lines); `pay` recomputes the split under the running
totals' lock and posts it to the ledger. Earlier settlements are paid outpatient settlements of self-pay
(class C) items on earlier days of the year, with the person's running totals row counting them: their
split counts nothing towards the caps, so the measured settlement's split is the same for both persons and
only the history differs.

Environment knobs:
  BENCH_HOSP_ORDERS   settlements prepared for the load run (default 6000)
  BENCH_HOSP_HISTORY  earlier settlements of the "big" person in the year (default 10000)
  BENCH_HOSP_PROBE    sequential settlements per probe person (default 200)
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from bench.harness import Server, Stats, load
from bench.seed import dispose, id_number, insert_orders, setup_app

ORDERS = int(os.environ.get("BENCH_HOSP_ORDERS", 6000))
HISTORY = int(os.environ.get("BENCH_HOSP_HISTORY", 10_000))
PAYERS = 200
WARM = 200  # warm-up settlements, not reported
PROBE = int(os.environ.get("BENCH_HOSP_PROBE", 200))
REGION = "532900"  # a demo policy region (yibao/seed.py)
# The measured bill: class A 20 yuan, class B 2 x 5 yuan (the pooled fund pays, the account the rest).
LINES = [
    {"category": "A", "quantity": 1, "unit_price_fen": 2000},
    {"category": "B", "quantity": 2, "unit_price_fen": 500},
]
HISTORY_LINES = [{"category": "C", "quantity": 1, "unit_price_fen": 1000}]


def _total(lines: list[dict[str, int]]) -> int:
    return sum(ln["quantity"] * ln["unit_price_fen"] for ln in lines)


def prepare(
    srv: Server, *, orders: int = ORDERS, history: int = HISTORY, probe: int = PROBE, warm: int = WARM
) -> dict[str, Any]:
    """A tertiary hospital, payers insured under a demo policy, settlements to pay and earlier ones."""
    from sqlalchemy import insert

    from benefits import policies
    from benefits.models import BenefitTotals
    from payments.hospital_models import HospitalSettlement
    from yibao.china_time import china_date
    from yibao.db import db, utcnow
    from yibao.registry import services as registry

    app = setup_app(srv)
    now = utcnow()
    today = china_date(now)
    with app.app_context():
        with db.uow() as uow:
            _, creds = registry.create_institution(
                uow,
                name="压测三级医院",
                kind="hospital",
                region=REGION,
                services=["01301"],
                level="tertiary",
            )
            inst_id = registry.institution_by_org_id(uow, creds.org_id).id
            payers = [
                registry.create_person(
                    uow,
                    name=f"压测住院{n}",
                    id_number=id_number(n, prefix="532901"),
                    insurance_type="employee",
                    insured_region=REGION,
                    personal_account_balance_fen=10**12,
                ).id
                for n in range(PAYERS + 2)
            ]
            found = policies.applicable(
                uow, insured_region=REGION, insurance_type="employee", year=today.year
            )
            uow.commit()
        small, big = payers[-2:]
        earlier_days = max(1, (today - today.replace(month=1, day=1)).days)

        def order_row(label: str, pid: int) -> dict[str, Any]:
            total = _total(HISTORY_LINES if label == "history" else LINES)
            return {
                "status": "paid" if label == "history" else "created",
                "paid_at": now if label == "history" else None,
                "drug_fen": total,
                "delivery_fee_fen": 0,
                "total_fen": total,
                "fund_pay_fen": 0,
                "account_pay_fen": 0,
                "mutual_aid_pay_fen": 0,
                "cash_pay_fen": total,
                "med_type": "outpatient",
            }

        def items_of(label: str, oid: int) -> list[dict[str, Any]]:
            lines = HISTORY_LINES if label == "history" else LINES
            return [
                {
                    "order_id": oid,
                    "line_no": i + 1,
                    "drug_code": f"HX{ln['category']}{i:02d}",
                    "drug_name": "压测诊疗项目",
                    "otc": False,
                    "quantity": ln["quantity"],
                    "unit_price_fen": ln["unit_price_fen"],
                    "trace_codes": [],
                }
                for i, ln in enumerate(lines)
            ]

        counter = iter(range(10**9))

        def settlements(uow: Any, rows: list[tuple[str, int, int, str]]) -> None:
            batch = []
            for label, pid, oid, _ in rows:
                is_history = label == "history"
                day = today - timedelta(days=1 + next(counter) % earlier_days) if is_history else today
                batch.append(
                    {
                        "order_id": oid,
                        "med_type": "outpatient",
                        "year": today.year,
                        "policy_id": found.row.id,
                        "policy_version": found.row.version,
                        "lines": HISTORY_LINES if is_history else LINES,
                        "split": {},
                        "counted": {} if is_history else None,
                        "day": day,
                        "institution_id": inst_id,
                        "person_id": pid,
                        "counts_for_day": is_history,
                        "created_at": now,
                    }
                )
            uow.session.execute(insert(HospitalSettlement), batch)

        plan = [("load", payers[i % PAYERS]) for i in range(orders)]
        plan += [("warm", payers[i % PAYERS]) for i in range(warm)]
        plan += [("small", small)] * probe + [("big", big)] * probe
        plan += [("history", small)] * 10 + [("history", big)] * history
        with db.uow() as uow:
            ids = insert_orders(
                uow,
                plan,
                institution_id=inst_id,
                purpose="counter",
                order_row=order_row,
                items_of=items_of,
                grant_source="ec_token",
                now=now,
                extra=settlements,
            )
            zero = {"hifp_outpatient_fen": 0, "hifp_inpatient_fen": 0, "hifmi_fen": 0, "maf_fen": 0}
            uow.session.execute(
                insert(BenefitTotals),
                [
                    {
                        "person_id": pid,
                        "year": today.year,
                        **zero,
                        "inpatient_share_fen": 0,
                        "deductible_outpatient_fen": 0,
                        "deductible_inpatient_fen": 0,
                        "settlements": n,
                        "updated_at": now,
                    }
                    for pid, n in ((small, 10), (big, history))
                ],
            )
            uow.commit()
    dispose(app)
    return {"key_id": creds.key_id, "secret": creds.secret, **ids}


def load_run(srv: Server, hosp: dict[str, Any], label: str, *, clients: int, duration: float) -> Stats:
    args = {"orders": hosp[label], "clients": clients, "key_id": hosp["key_id"], "secret": hosp["secret"]}
    return load(srv.url, "bench.payments:pay_requests", clients=clients, duration=duration, args=args)


def probes(srv: Server, hosp: dict[str, Any]) -> dict[str, Any]:
    """One settlement's pay, sequentially, at 10 vs HISTORY earlier settlements of the person (the two
    alternating: bench.payments.sequential_pair)."""
    from bench.payments import sequential_pair

    creds = {"key_id": hosp["key_id"], "secret": hosp["secret"]}
    small_stats, big_stats = sequential_pair(srv, hosp["small"], hosp["big"], creds)
    small, big = small_stats.as_dict(), big_stats.as_dict()
    ratio = round(big["p50_ms"] / small["p50_ms"], 2) if small["p50_ms"] else float("nan")
    print(
        f"one settlement, 10 earlier settlements in the year:  p50 {small['p50_ms']:.2f} ms  "
        f"p99 {small['p99_ms']:.2f} ms  statuses {small['statuses']}\n"
        f"one settlement, {HISTORY} earlier settlements:        p50 {big['p50_ms']:.2f} ms  "
        f"p99 {big['p99_ms']:.2f} ms  statuses {big['statuses']} (ratio {ratio:.2f})",
        flush=True,
    )
    return {"settlement_small": small, "settlement_big": big, "settlement_history_ratio": ratio}
