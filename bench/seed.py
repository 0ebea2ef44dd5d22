"""Bulk seeding of the benchmarks' data straight into the real tables (setup speed only, never measured).

Everything here goes through the service's own models and unit of work, in the database the bench server
uses, so the rows are exactly the ones the measured requests read: orders `pay` locks, supervision sales
the rules count, hospital settlements and running totals a settlement reads.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from bench.harness import BENCH_REDIS_URL, Server

CHUNK = 5000


def setup_app(srv: Server) -> Any:
    """An in-process app on the bench server's database (and its Redis; on SQLite the bench Redis db)."""
    from yibao import create_app

    return create_app(
        {
            "DATABASE_URL": srv.database_url,
            "REDIS_URL": srv.redis_url or BENCH_REDIS_URL,
            "SECRET_KEY": (srv.instance / "secret_key").read_text().strip(),
            "LOG_LEVEL": "WARNING",
            "JSON_LOGS": False,
        }
    )


def dispose(app: Any) -> None:
    app.extensions["yibao.db"]["engine"].dispose()


def id_number(n: int, *, prefix: str = "110101") -> str:
    from yibao.registry.validators import id_check_digit

    first17 = f"{prefix}{19700101 + n % 28:08d}{n % 1000:03d}"
    return first17 + id_check_digit(first17)


def trace_code() -> str:
    return "9" + "".join(secrets.choice("0123456789") for _ in range(19))


def chunks(rows: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def insert_orders(
    uow: Any,
    plan: Sequence[tuple[str, int]],
    *,
    institution_id: int,
    purpose: str,
    order_row: Any,
    items_of: Any,
    grant_source: str,
    now: datetime,
    extra: Any = None,
) -> dict[str, list[str]]:
    """Insert one grant + order + items per (label, person_id) of `plan`; return pay_order_ids by label.

    order_row(label, pid) -> the order's amount/status columns; items_of(label, order_id) -> item rows;
    extra(uow, rows) gets [(label, pid, order_id, pay_order_id)] of each chunk (hospital rows, sales)."""
    from sqlalchemy import insert

    from payments.models import OrderItem, PaymentGrant, PaymentOrder

    ids: dict[str, list[str]] = {}
    for chunk in chunks(plan):
        grants = [
            {
                "grant_key": secrets.token_hex(32),
                "source": grant_source,
                "purpose": purpose,
                "person_id": pid,
                "expires_at": now + timedelta(minutes=5),
                "used_at": now,
                "created_at": now,
            }
            for _, pid in chunk
        ]
        grant_ids = uow.session.scalars(
            insert(PaymentGrant).returning(PaymentGrant.id, sort_by_parameter_order=True), grants
        ).all()
        orders, pos = [], []
        for (label, pid), gid in zip(chunk, grant_ids, strict=True):
            po = "po_" + secrets.token_urlsafe(18)
            pos.append(po)
            ids.setdefault(label, []).append(po)
            orders.append(
                {
                    "pay_order_id": po,
                    "institution_id": institution_id,
                    "payer_person_id": pid,
                    "grant_id": gid,
                    "purpose": purpose,
                    "merchant_order_no": po,
                    "account_only": False,
                    "refunded_fen": 0,
                    "account_refunded_fen": 0,
                    "mutual_aid_refunded_fen": 0,
                    "cash_refunded_fen": 0,
                    "created_at": now,
                    "updated_at": now,
                    **order_row(label, pid),
                }
            )
        order_ids = uow.session.scalars(
            insert(PaymentOrder).returning(PaymentOrder.id, sort_by_parameter_order=True), orders
        ).all()
        items = [
            row for (label, _), oid in zip(chunk, order_ids, strict=True) for row in items_of(label, oid)
        ]
        if items:
            uow.session.execute(insert(OrderItem), items)
        if extra is not None:
            extra(
                uow,
                [(label, pid, oid, po) for (label, pid), oid, po in zip(chunk, order_ids, pos, strict=True)],
            )
    return ids


def vacuum(srv: Server) -> None:
    """After bulk seeding, VACUUM (ANALYZE) the bench database on PostgreSQL, as autovacuum would have
    done to a real database long before: fresh statistics for the planner, and the visibility map that
    index-only scans need (supervision's window sums: ix_supervision_sales_person_code_sold_at covers
    them, migration s0003). Without it every freshly seeded row costs a heap fetch, which no long-lived
    database pays. SQLite: ANALYZE (it has no visibility map)."""
    from sqlalchemy import create_engine, text

    from yibao.config import normalize_database_url

    assert srv.database_url is not None
    engine = create_engine(normalize_database_url(srv.database_url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("VACUUM (ANALYZE)" if srv.postgres else "ANALYZE"))
    finally:
        engine.dispose()
