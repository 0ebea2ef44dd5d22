"""idempotency_keys and webhook_events range-partitioned by month on PostgreSQL (issue 12)

idempotency_keys gains period_start (the first instant of the UTC month of the first claim, filled
from created_at for existing rows): the partition key, part of the unique (institution_id, key,
period_start); webhook_events is partitioned by created_at, its event_id unique with created_at.
Every row is kept (yibao.partitions.rebuild: month partitions from the oldest row's month to next
month, and a default partition). SQLite stays unpartitioned, with the same columns and constraints.

Revision ID: p0003
Revises: p0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import yibao.db
from yibao.partitions import Shape, rebuild

revision = "p0003"
down_revision = "p0002"
branch_labels = None
depends_on = None

KEYS_FKS = {"fk_idempotency_keys_institution_id_institutions": ("institution_id", "institutions")}
KEYS_INDEXES = {"ix_idempotency_keys_expires_at": ("expires_at",)}
EVENTS_FKS = {"fk_webhook_events_institution_id_institutions": ("institution_id", "institutions")}
EVENTS_INDEXES = {
    "ix_webhook_events_due": ("state", "next_attempt_at"),
    "ix_webhook_events_institution_id": ("institution_id",),
}
MONTH_OF_CREATED = {
    "postgresql": "date_trunc('month', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    "sqlite": "substr(created_at, 1, 7) || '-01 00:00:00.000000'",
}


def upgrade() -> None:
    conn = op.get_bind()
    dialect = conn.dialect.name
    with op.batch_alter_table("idempotency_keys") as batch_op:
        batch_op.add_column(sa.Column("period_start", yibao.db.UTCDateTime(timezone=True), nullable=True))
    op.execute(f"UPDATE idempotency_keys SET period_start = {MONTH_OF_CREATED[dialect]}")  # noqa: S608
    with op.batch_alter_table("idempotency_keys") as batch_op:
        batch_op.alter_column(
            "period_start", existing_type=yibao.db.UTCDateTime(timezone=True), nullable=False
        )
        if dialect != "postgresql":
            batch_op.drop_constraint("uq_idempotency_keys_institution_id_key", type_="unique")
            batch_op.create_unique_constraint(
                "uq_idempotency_keys_institution_id_key", ["institution_id", "key", "period_start"]
            )
    if dialect != "postgresql":
        with op.batch_alter_table("webhook_events") as batch_op:
            batch_op.drop_constraint("uq_webhook_events_event_id", type_="unique")
            batch_op.create_unique_constraint("uq_webhook_events_event_id", ["event_id", "created_at"])
        return
    now = yibao.db.utcnow()
    keys = Shape(
        primary_key=("id", "period_start"),
        uniques={"uq_idempotency_keys_institution_id_key": ("institution_id", "key", "period_start")},
        indexes=KEYS_INDEXES,
        foreign_keys=KEYS_FKS,
    )
    rebuild(conn, "idempotency_keys", keys, partition_column="period_start", now=now)
    events = Shape(
        primary_key=("id", "created_at"),
        uniques={"uq_webhook_events_event_id": ("event_id", "created_at")},
        indexes=EVENTS_INDEXES,
        foreign_keys=EVENTS_FKS,
    )
    rebuild(conn, "webhook_events", events, partition_column="created_at", now=now)


def downgrade() -> None:
    conn = op.get_bind()
    # One row per (institution, key) again: the newest claim of a key seen in two months wins.
    op.execute(
        "DELETE FROM idempotency_keys WHERE id NOT IN"
        " (SELECT max(id) FROM idempotency_keys GROUP BY institution_id, key)"
    )
    if conn.dialect.name == "postgresql":
        now = yibao.db.utcnow()
        keys = Shape(
            primary_key=("id",),
            uniques={"uq_idempotency_keys_institution_id_key": ("institution_id", "key")},
            indexes=KEYS_INDEXES,
            foreign_keys=KEYS_FKS,
        )
        rebuild(conn, "idempotency_keys", keys, partition_column=None, now=now)
        events = Shape(
            primary_key=("id",),
            uniques={"uq_webhook_events_event_id": ("event_id",)},
            indexes=EVENTS_INDEXES,
            foreign_keys=EVENTS_FKS,
        )
        rebuild(conn, "webhook_events", events, partition_column=None, now=now)
    else:
        with op.batch_alter_table("webhook_events") as batch_op:
            batch_op.drop_constraint("uq_webhook_events_event_id", type_="unique")
            batch_op.create_unique_constraint("uq_webhook_events_event_id", ["event_id"])
    with op.batch_alter_table("idempotency_keys") as batch_op:
        if conn.dialect.name != "postgresql":
            batch_op.drop_constraint("uq_idempotency_keys_institution_id_key", type_="unique")
            batch_op.create_unique_constraint(
                "uq_idempotency_keys_institution_id_key", ["institution_id", "key"]
            )
        batch_op.drop_column("period_start")
