"""offline credentials (YO1 codes); usage audit gains kind and credential_id

Revision ID: v0004
Revises: v0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import yibao.db

revision = "v0004"
down_revision = "v0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "voucher_offline_credentials",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("secret_enc", sa.String(length=255), nullable=False),
        sa.Column("created_at", yibao.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", yibao.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_reason", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_voucher_offline_credentials_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voucher_offline_credentials")),
    )
    with op.batch_alter_table("voucher_offline_credentials", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_voucher_offline_credentials_person_id"), ["person_id"], unique=False
        )
        batch_op.create_index(
            "uq_voucher_offline_credentials_active",
            ["person_id", "device_id"],
            unique=True,
            postgresql_where=sa.text("ended_at IS NULL"),
            sqlite_where=sa.text("ended_at IS NULL"),
        )
    with op.batch_alter_table("voucher_usage", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=8), server_default="signed", nullable=False))
        batch_op.add_column(sa.Column("credential_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("voucher_usage", schema=None) as batch_op:
        batch_op.drop_column("credential_id")
        batch_op.drop_column("kind")
    with op.batch_alter_table("voucher_offline_credentials", schema=None) as batch_op:
        batch_op.drop_index("uq_voucher_offline_credentials_active")
        batch_op.drop_index(batch_op.f("ix_voucher_offline_credentials_person_id"))
    op.drop_table("voucher_offline_credentials")
