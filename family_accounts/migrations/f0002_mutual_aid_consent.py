"""mutual_aid_filings: the member's consent (pending -> active), expiry, unknown psn_nos

Every existing ACTIVE filing becomes PENDING with a fresh 7-day expiry from the migration time: no
money flows on a filing the member never approved; the member approves it once.

Revision ID: f0002
Revises: f0001
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

import yibao.db

revision = "f0002"
down_revision = "f0001"
branch_labels = None
depends_on = None

TABLE = "mutual_aid_filings"
PENDING_TTL = timedelta(days=7)  # family_accounts.lifecycle.PENDING_TTL when this was written
LIVE = "status IN ('pending', 'active')"
NEW_CHECKS = {
    "status": "status IN ('pending', 'active', 'declined', 'expired', 'withdrawn')",
    "unknown_member_never_approved": "member_person_id IS NOT NULL OR status IN ('pending', 'expired', 'withdrawn')",
    "pending_expires": "status <> 'pending' OR expires_at IS NOT NULL",
    "active_approved": "status <> 'active' OR approved_at IS NOT NULL",
}


def mark_active_filings_pending(conn: sa.Connection, now: datetime) -> int:
    """The data step: every active filing waits for its member's approval, 7 days from `now`."""
    filings = sa.table(
        TABLE, sa.column("status"), sa.column("expires_at", yibao.db.UTCDateTime()), sa.column("approved_at")
    )
    result = conn.execute(
        filings.update()
        .where(filings.c.status == "active")
        .values(status="pending", expires_at=now + PENDING_TTL, approved_at=None)
    )
    return result.rowcount


def upgrade() -> None:
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.add_column(sa.Column("member_psn_no", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("expires_at", yibao.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("approved_at", yibao.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("declined_at", yibao.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.drop_constraint(
            batch_op.f("ck_mutual_aid_filings_status"), type_="check"
        )  # no 'pending' yet
    op.execute(
        "UPDATE mutual_aid_filings SET member_psn_no ="
        " (SELECT psn_no FROM persons WHERE persons.id = mutual_aid_filings.member_person_id)"
    )
    mark_active_filings_pending(op.get_bind(), datetime.now(UTC))
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.alter_column("member_psn_no", existing_type=sa.String(length=32), nullable=False)
        batch_op.alter_column("member_person_id", existing_type=sa.Integer(), nullable=True)
        for name, sql in NEW_CHECKS.items():
            batch_op.create_check_constraint(batch_op.f(f"ck_{TABLE}_{name}"), sql)
        batch_op.drop_index(
            "uq_mutual_aid_filings_live_pair",
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )
        batch_op.create_index(
            "uq_mutual_aid_filings_live_pair",
            ["holder_person_id", "member_person_id"],
            unique=True,
            sqlite_where=sa.text(LIVE),
            postgresql_where=sa.text(LIVE),
        )
        batch_op.create_index(
            "uq_mutual_aid_filings_live_psn_no",
            ["holder_person_id", "member_psn_no"],
            unique=True,
            sqlite_where=sa.text(LIVE),
            postgresql_where=sa.text(LIVE),
        )


def downgrade() -> None:
    # Filings of unknown psn_nos and every status the old table cannot hold are dropped; pending
    # filings (the old active ones included) are not restored as active: that would move money unproven.
    op.execute("DELETE FROM mutual_aid_filings WHERE member_person_id IS NULL OR status <> 'withdrawn'")
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.drop_index("uq_mutual_aid_filings_live_psn_no")
        batch_op.drop_index("uq_mutual_aid_filings_live_pair")
        for name in NEW_CHECKS:
            batch_op.drop_constraint(batch_op.f(f"ck_{TABLE}_{name}"), type_="check")
        batch_op.create_check_constraint(
            batch_op.f("ck_mutual_aid_filings_status"), "status IN ('active', 'withdrawn')"
        )
        batch_op.alter_column("member_person_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_index(
            "uq_mutual_aid_filings_live_pair",
            ["holder_person_id", "member_person_id"],
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )
        batch_op.drop_column("declined_at")
        batch_op.drop_column("approved_at")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("member_psn_no")
