"""Monthly partitions and retention of the growing tables (issue 12; yibao/partitions.py).

The same tests run on SQLite (unpartitioned: prune deletes rows) and on PostgreSQL (partitioned:
prune drops whole month partitions and deletes old rows of the default partition); the checks of the
partitions themselves are PostgreSQL-only, guarded by `is_postgres`.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from payments.models import IdempotencyKey, WebhookEvent
from tests.support import reset_postgres as _reset_postgres
from voucher.models import UsageRecord, VoucherUse
from yibao import config, partitions
from yibao.db import db, utcnow
from yibao.registry import services as registry

OLD = datetime(2020, 1, 15, tzinfo=UTC)
OLDER = datetime(2020, 2, 10, tzinfo=UTC)
TABLES = {
    "voucher_uses": "expires_at",
    "voucher_usage": "created_at",
    "idempotency_keys": "period_start",
    "webhook_events": "created_at",
}


def _inst_id(app, yb) -> int:
    inst = yb.institution(region="532900")
    with app.app_context(), db.uow(readonly=True) as uow:
        return registry.institution_by_org_id(uow, inst.org_id).id


def _use(at: datetime, sub: str = "s") -> VoucherUse:
    return VoucherUse(sub=sub + secrets.token_hex(3), jti=secrets.token_hex(4), expires_at=at, used_at=at)


def _usage(inst_id: int, at: datetime) -> UsageRecord:
    return UsageRecord(
        institution_id=inst_id,
        business_type="02121",
        operator_id="op",
        operator_name="op",
        device_id="dev",
        out_biz_no=secrets.token_hex(4),
        result="refused",
        code="VOUCHER_MALFORMED",
        created_at=at,
    )


def _key(inst_id: int, at: datetime, *, expires: datetime | None = None) -> IdempotencyKey:
    return IdempotencyKey(
        institution_id=inst_id,
        key=secrets.token_hex(6),
        request_hash="h" * 64,
        state="done",
        claim_token="t" * 32,
        locked_until=at,
        created_at=at,
        expires_at=expires or at + timedelta(hours=24),
        period_start=partitions.month_start(at),
    )


def _event(inst_id: int, at: datetime, state: str) -> WebhookEvent:
    return WebhookEvent(
        event_id="msg_" + secrets.token_hex(8),
        institution_id=inst_id,
        type="payment.paid",
        payload="{}",
        state=state,
        attempts=0,
        next_attempt_at=at,
        created_at=at,
    )


def _add(app, *rows) -> list[int]:
    with app.app_context(), db.uow() as uow:
        uow.session.add_all(rows)
        uow.session.flush()
        ids = [r.id for r in rows]
        uow.commit()
    return ids


def _ids(app, model) -> set[int]:
    with app.app_context(), db.uow(readonly=True) as uow:
        return set(uow.session.scalars(select(model.id)))


def _partition_of(app, table: str, row_id: int) -> str:
    with app.app_context(), db.engine.connect() as conn:
        return conn.scalar(text(f"SELECT tableoid::regclass::text FROM {table} WHERE id = :i"), {"i": row_id})  # noqa: S608


def _create_months(app, *months: datetime) -> None:
    with app.app_context(), db.engine.begin() as conn:
        for table, column in TABLES.items():
            for m in months:
                partitions.create_month(conn, table, column, m)


def _prune(runner, older_than: str) -> dict:
    out = runner.invoke(args=["maintenance", "prune", "--older-than", older_than])
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


@pytest.fixture
def app_config(app_config: dict) -> dict:
    return {**app_config, "USAGE_RETENTION_DAYS": 365}


def test_prune_removes_old_rows_and_keeps_what_is_still_needed(app, yb, runner, is_postgres):
    inst = _inst_id(app, yb)
    now = utcnow()
    if is_postgres:
        _create_months(app, OLD, OLDER)
    uses_old, uses_live = _add(app, _use(OLD), _use(now + timedelta(minutes=2)))
    usage_old, usage_ancient, usage_kept, usage_new = _add(
        app,
        _usage(inst, OLD),
        _usage(inst, datetime(1999, 3, 1, tzinfo=UTC)),  # no month partition: the default one
        _usage(inst, now - timedelta(days=200)),  # older than --older-than, younger than the retention
        _usage(inst, now),
    )
    keys_old, keys_needed, keys_new = _add(
        app,
        _key(inst, OLD),
        _key(inst, OLDER, expires=now + timedelta(hours=1)),  # still live: its partition must stay
        _key(inst, now),
    )
    ev_old, ev_pending, ev_new = _add(
        app, _event(inst, OLD, "delivered"), _event(inst, OLDER, "pending"), _event(inst, now, "delivered")
    )

    out = _prune(runner, "30d")["pruned"]

    assert _ids(app, VoucherUse) == {uses_live}
    assert _ids(app, UsageRecord) == {usage_kept, usage_new}  # the retention (365 d) keeps the 200-day row
    assert _ids(app, IdempotencyKey) == {keys_needed, keys_new}
    assert _ids(app, WebhookEvent) == {ev_pending, ev_new}  # a pending event is never pruned
    assert out["voucher_usage"]["cutoff"] < (now - timedelta(days=364)).isoformat()
    if is_postgres:
        for table in TABLES:
            assert f"{table}_p202001" in out[table]["dropped"], out[table]
        assert out["idempotency_keys"]["kept"] == [
            {"partition": "idempotency_keys_p202002", "reason": "rows still needed"}
        ]
        assert out["webhook_events"]["kept"] == [
            {"partition": "webhook_events_p202002", "reason": "rows still needed"}
        ]
        assert out["voucher_usage"]["deleted_rows"] == 1  # the 1999 row, from the default partition
        assert _partition_of(app, "voucher_usage", usage_kept) == "voucher_usage_default"
        this = partitions.partition_name("voucher_usage", partitions.month_start(now))
        assert _partition_of(app, "voucher_usage", usage_new) == this
    else:
        assert out["voucher_usage"]["deleted_rows"] == 2 and out["voucher_uses"]["dropped"] == []

    # Nothing younger than a table's minimum goes, whatever --older-than says.
    _prune(runner, "0s")
    assert _ids(app, VoucherUse) == {uses_live}  # its code could still verify
    assert _ids(app, UsageRecord) == {usage_kept, usage_new}
    assert _ids(app, IdempotencyKey) == {keys_needed, keys_new}
    # Delivered events have no minimum: SQLite deletes the row; PostgreSQL drops whole months only.
    assert _ids(app, WebhookEvent) == ({ev_pending, ev_new} if is_postgres else {ev_pending})


@pytest.mark.parametrize("bad", ["", "30", "30y", "-1d", "1.5d", "d"])
def test_prune_refuses_a_bad_duration_and_removes_nothing(app, yb, runner, bad):
    inst = _inst_id(app, yb)
    (ev,) = _add(app, _event(inst, OLD, "delivered"))
    out = runner.invoke(args=["maintenance", "prune", "--older-than", bad])
    assert out.exit_code == 2 and "--older-than" in out.output
    assert _ids(app, WebhookEvent) == {ev}


def test_rows_dated_far_outside_the_partitions_insert_and_move_with_their_month(app, yb, is_postgres):
    inst = _inst_id(app, yb)
    future, past = datetime(2099, 6, 3, tzinfo=UTC), datetime(1990, 1, 2, tzinfo=UTC)
    ids = _add(
        app, _event(inst, future, "pending"), _event(inst, past, "pending"), _use(future), _key(inst, past)
    )
    assert len(ids) == 4  # never "no partition of relation found for row"
    if not is_postgres:
        return
    assert {_partition_of(app, "webhook_events", i) for i in ids[:2]} == {"webhook_events_default"}
    # The month's partition, created later, takes its rows out of the default partition.
    _create_months(app, datetime(2099, 6, 1, tzinfo=UTC))
    assert _partition_of(app, "webhook_events", ids[0]) == "webhook_events_p209906"
    assert _partition_of(app, "voucher_uses", ids[2]) == "voucher_uses_p209906"
    assert _partition_of(app, "webhook_events", ids[1]) == "webhook_events_default"
    assert _ids(app, WebhookEvent) >= set(ids[:2])


def test_ensure_partitions_creates_this_and_the_next_months(app, runner, is_postgres):
    out = runner.invoke(args=["maintenance", "ensure-partitions", "--ahead", "3"])
    assert out.exit_code == 0, out.output
    created = json.loads(out.output)["created"]
    assert set(created) == set(TABLES)
    if not is_postgres:
        assert all(v == [] for v in created.values())  # SQLite: nothing to partition
        return
    now = utcnow()
    with app.app_context(), db.engine.connect() as conn:
        for table in TABLES:
            months = {m for _, m in partitions.month_partitions(conn, table)}
            wanted = {partitions.add_months(partitions.month_start(now), i) for i in range(4)}
            assert wanted <= months, table
    again = json.loads(runner.invoke(args=["maintenance", "ensure-partitions", "--ahead", "3"]).output)
    assert again["created"] == {t: [] for t in TABLES}  # idempotent


def test_truncation_between_tests_empties_every_partition(app, yb, db_template, is_postgres):
    if not is_postgres:
        pytest.skip("PostgreSQL only: SQLite tests start from a copy of the template file")
    inst = _inst_id(app, yb)
    _add(app, _event(inst, utcnow(), "pending"), _event(inst, datetime(1990, 1, 2, tzinfo=UTC), "pending"))
    _reset_postgres(db_template)
    with app.app_context(), db.uow(readonly=True) as uow:
        assert uow.session.scalar(select(func.count(WebhookEvent.id))) == 0


def test_usage_retention_is_a_setting(monkeypatch):
    monkeypatch.delenv("YIBAO_USAGE_RETENTION_DAYS", raising=False)
    assert config.load()["USAGE_RETENTION_DAYS"] == 1095
    monkeypatch.setenv("YIBAO_USAGE_RETENTION_DAYS", "400")
    assert config.load()["USAGE_RETENTION_DAYS"] == 400
    for bad in ("0", "-3", "ten", "1.5"):
        monkeypatch.setenv("YIBAO_USAGE_RETENTION_DAYS", bad)
        with pytest.raises(RuntimeError, match="YIBAO_USAGE_RETENTION_DAYS"):
            config.load()
