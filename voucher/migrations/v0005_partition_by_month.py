"""voucher_uses and voucher_usage range-partitioned by month on PostgreSQL (issue 12)

voucher_uses by expires_at (a function of the code, so its unique (sub, jti, expires_at) still means
"once"), voucher_usage by created_at. Every row is kept: each table is rebuilt partitioned, with month
partitions from its oldest row's month (at most 36 months back) to next month and a default partition
for anything outside them. SQLite stays unpartitioned; only the unique constraint of voucher_uses
gains expires_at, as in the model.

Revision ID: v0005
Revises: v0004
"""

from __future__ import annotations

from alembic import op

from yibao.db import utcnow
from yibao.partitions import Shape, rebuild

revision = "v0005"
down_revision = "v0004"
branch_labels = None
depends_on = None

USAGE_FKS = {
    "fk_voucher_usage_actor_person_id_persons": ("actor_person_id", "persons"),
    "fk_voucher_usage_institution_id_institutions": ("institution_id", "institutions"),
    "fk_voucher_usage_person_id_persons": ("person_id", "persons"),
}
USAGE_INDEXES = {
    "ix_voucher_usage_institution_id": ("institution_id",),
    "ix_voucher_usage_person_id_id": ("person_id", "id"),
}
USES_INDEXES = {"ix_voucher_uses_expires_at": ("expires_at",)}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("voucher_uses") as batch_op:
            batch_op.drop_constraint("uq_voucher_uses_sub_jti", type_="unique")
            batch_op.create_unique_constraint("uq_voucher_uses_sub_jti", ["sub", "jti", "expires_at"])
        return
    conn, now = op.get_bind(), utcnow()
    uses = Shape(
        primary_key=("id", "expires_at"),
        uniques={"uq_voucher_uses_sub_jti": ("sub", "jti", "expires_at")},
        indexes=USES_INDEXES,
    )
    rebuild(conn, "voucher_uses", uses, partition_column="expires_at", now=now)
    usage = Shape(primary_key=("id", "created_at"), indexes=USAGE_INDEXES, foreign_keys=USAGE_FKS)
    rebuild(conn, "voucher_usage", usage, partition_column="created_at", now=now)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("voucher_uses") as batch_op:
            batch_op.drop_constraint("uq_voucher_uses_sub_jti", type_="unique")
            batch_op.create_unique_constraint("uq_voucher_uses_sub_jti", ["sub", "jti"])
        return
    conn, now = op.get_bind(), utcnow()
    uses = Shape(
        primary_key=("id",), uniques={"uq_voucher_uses_sub_jti": ("sub", "jti")}, indexes=USES_INDEXES
    )
    rebuild(conn, "voucher_uses", uses, partition_column=None, now=now)
    usage = Shape(primary_key=("id",), indexes=USAGE_INDEXES, foreign_keys=USAGE_FKS)
    rebuild(conn, "voucher_usage", usage, partition_column=None, now=now)
