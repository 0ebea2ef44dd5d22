"""payments: hospital settlements (issue 15) — the fund part of an order and its split

Revision ID: p0002
Revises: p0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import yibao.db

revision = "p0002"
down_revision = "p0001"
branch_labels = None
depends_on = "b0001"

OLD_SPLIT = (
    "total_fen = drug_fen + delivery_fee_fen"
    " AND total_fen = account_pay_fen + mutual_aid_pay_fen + cash_pay_fen"
)
NEW_SPLIT = (
    "total_fen = drug_fen + delivery_fee_fen"
    " AND total_fen = fund_pay_fen + account_pay_fen + mutual_aid_pay_fen + cash_pay_fen"
)


def upgrade() -> None:
    with op.batch_alter_table("payment_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fund_pay_fen", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("med_type", sa.String(length=16), nullable=True))
        batch_op.drop_constraint(op.f("ck_payment_orders_split_sums"), type_="check")
        batch_op.create_check_constraint(op.f("ck_payment_orders_split_sums"), NEW_SPLIT)
    op.create_table(
        "hospital_settlements",
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("med_type", sa.String(length=16), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("split", sa.JSON(), nullable=False),
        sa.Column("counted", sa.JSON(), nullable=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("counts_for_day", sa.Boolean(), nullable=False),
        sa.Column("created_at", yibao.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "med_type IN ('outpatient', 'inpatient')", name=op.f("ck_hospital_settlements_med_type")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["payment_orders.id"], name=op.f("fk_hospital_settlements_order_id_payment_orders")
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_hospital_settlements")),
    )
    op.create_index(
        "ix_hospital_settlements_day",
        "hospital_settlements",
        ["person_id", "institution_id", "day"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_hospital_settlements_day", table_name="hospital_settlements")
    op.drop_table("hospital_settlements")
    with op.batch_alter_table("payment_orders", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_payment_orders_split_sums"), type_="check")
        batch_op.create_check_constraint(op.f("ck_payment_orders_split_sums"), OLD_SPLIT)
        batch_op.drop_column("med_type")
        batch_op.drop_column("fund_pay_fen")
