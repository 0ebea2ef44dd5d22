"""voucher_uses and voucher_usage ids as BIGINT

One row per scan, nationwide: 2^31 rows is a matter of months.

Revision ID: v0003
Revises: v0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "v0003"
down_revision = "v0002"
branch_labels = None
depends_on = None

TABLES = ("voucher_uses", "voucher_usage")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: INTEGER PRIMARY KEY is already a 64-bit rowid
    for table in TABLES:
        op.alter_column(
            table, "id", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False
        )
        # SERIAL made an integer sequence: it would stop at 2^31 - 1 whatever the column's type.
        op.execute(f"ALTER SEQUENCE IF EXISTS {table}_id_seq AS bigint")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER SEQUENCE IF EXISTS {table}_id_seq AS integer")
        op.alter_column(
            table, "id", type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False
        )
