"""Migrations v0005 and p0003 (issue 12): the growing tables become monthly partitioned on PostgreSQL
and every existing row survives, its id sequence goes on, single use stays enforced, and back.

As in tests/family_accounts/test_migration.py: from an empty database (SQLite: a fresh file;
PostgreSQL: a fresh schema of the test database), rows are written at the previous heads (v0004,
p0002), then the upgrade runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import column, create_engine, select, table, text
from sqlalchemy.exc import IntegrityError

from payments.models import IdempotencyKey, WebhookEvent
from voucher.models import UsageRecord, VoucherUse
from yibao.config import normalize_database_url
from yibao.db import UTCDateTime, utcnow
from yibao.migrate import downgrade, upgrade
from yibao.partitions import month_start

OLD = datetime(2025, 6, 10, 8, 30, tzinfo=UTC)
# idempotency_keys as it was at p0002 (the model has period_start, the old table not).
OLD_KEYS = table(
    "idempotency_keys",
    *(column(c) for c in ("id", "institution_id", "key", "request_hash", "state", "claim_token")),
    *(column(c, UTCDateTime()) for c in ("locked_until", "created_at", "expires_at")),
)
TABLES = ("voucher_uses", "voucher_usage", "idempotency_keys", "webhook_events")


def _old_rows(conn, now: datetime) -> None:
    """Rows at the old heads: the model tables' columns minus period_start (not there yet)."""
    conn.execute(
        text(
            "INSERT INTO institutions (id, org_id, name, kind, region, services, key_id, secret_enc,"
            " status, secret_rotated_at, created_at) VALUES (1, 'org_mig', 'x', 'pharmacy', '532900',"
            " '[]', 'ak_mig', 'x', 'active', :now, :now)"
        ),
        {"now": now},
    )
    for at, n in ((OLD, 1), (now, 2)):
        conn.execute(
            VoucherUse.__table__.insert(),
            {"sub": f"sub{n}", "jti": f"j{n}", "expires_at": at, "used_at": at},
        )
        conn.execute(
            UsageRecord.__table__.insert(),
            {
                "institution_id": 1,
                "business_type": "02121",
                "operator_id": "op",
                "operator_name": "op",
                "device_id": "d",
                "out_biz_no": f"o{n}",
                "result": "accepted",
                "created_at": at,
                "kind": "signed",
            },
        )
        conn.execute(
            OLD_KEYS.insert(),
            {
                "institution_id": 1,
                # one key claimed in June, another now: after the upgrade, one row per month
                "key": "same-key" if n == 1 else "other-key",
                "request_hash": "h" * 64,
                "state": "done" if n == 1 else "in_progress",
                "claim_token": "t" * 32,
                "locked_until": at,
                "created_at": at,
                "expires_at": at + timedelta(hours=24),
            },
        )
        conn.execute(
            WebhookEvent.__table__.insert(),
            {
                "event_id": f"msg_{n}",
                "institution_id": 1,
                "type": "payment.paid",
                "payload": "{}",
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": at,
                "created_at": at,
            },
        )


def _partitions(conn, table: str) -> set[str]:
    return set(
        conn.scalars(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = to_regclass(:t)"
            ),
            {"t": table},
        )
    )


def test_existing_rows_survive_partitioning_and_back(empty_url: str, is_postgres: bool):
    upgrade(empty_url, "v0004")
    upgrade(empty_url, "p0002")
    engine = create_engine(normalize_database_url(empty_url))
    now = utcnow()
    with engine.begin() as conn:
        _old_rows(conn, now)
    upgrade(empty_url, "heads")

    with engine.begin() as conn:
        for model in (VoucherUse, UsageRecord, IdempotencyKey, WebhookEvent):
            assert sorted(conn.scalars(select(model.__table__.c.id))) == [1, 2], model
        periods = dict(conn.execute(select(IdempotencyKey.id, IdempotencyKey.period_start)).all())
        periods = {k: v if isinstance(v, datetime) else datetime.fromisoformat(v) for k, v in periods.items()}
        assert {k: v.replace(tzinfo=UTC) for k, v in periods.items()} == {
            1: month_start(OLD),
            2: month_start(now),
        }
        if is_postgres:
            for table in TABLES:
                kind = conn.scalar(
                    text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
                )
                assert kind == "p", table
                parts = _partitions(conn, table)
                assert {f"{table}_default", f"{table}_p202506", f"{table}_p{now:%Y%m}"} <= parts
            where = conn.scalar(text("SELECT tableoid::regclass::text FROM voucher_usage WHERE id = 1"))
            assert where == "voucher_usage_p202506"
        # The id sequences go on after the copied rows.
        new_id = conn.execute(
            WebhookEvent.__table__.insert().returning(WebhookEvent.__table__.c.id),
            {
                "event_id": "msg_new",
                "institution_id": 1,
                "type": "t",
                "payload": "{}",
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            },
        ).scalar()
        assert new_id == 3
        # The same key again in June is still refused by the database; in another month it is a row.
        same = {
            "institution_id": 1,
            "key": "same-key",
            "request_hash": "h" * 64,
            "state": "done",
            "claim_token": "t" * 32,
            "locked_until": now,
            "created_at": now,
            "expires_at": now,
        }
        conn.execute(IdempotencyKey.__table__.insert(), {**same, "period_start": month_start(now)})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(IdempotencyKey.__table__.insert(), {**same, "period_start": month_start(OLD)})
    with pytest.raises(IntegrityError), engine.begin() as conn:  # single use: the same code once
        conn.execute(
            VoucherUse.__table__.insert(), {"sub": "sub1", "jti": "j1", "expires_at": OLD, "used_at": now}
        )

    downgrade(empty_url, "p0002")
    downgrade(empty_url, "v0004")
    with engine.connect() as conn:
        assert sorted(conn.scalars(text("SELECT id FROM voucher_usage"))) == [1, 2]
        assert sorted(conn.scalars(text("SELECT id FROM webhook_events"))) == [1, 2, 3]
        # one row per (institution, key) again: the newest claim of "same-key" won
        assert sorted(conn.scalars(text("SELECT id FROM idempotency_keys"))) == [2, 3]
        if is_postgres:
            for table in TABLES:
                kind = conn.scalar(
                    text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
                )
                assert kind == "r", table
    engine.dispose()
