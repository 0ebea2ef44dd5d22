"""benefits: versioned benefit policies and per-person running totals (issue 15)

Revision ID: b0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import yibao.db

revision = "b0001"
down_revision = None
branch_labels = ("benefits",)
depends_on = "0002_benefit_registry"


def upgrade() -> None:
    op.create_table(
        "benefit_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=6), nullable=False),
        sa.Column("insurance_type", sa.String(length=16), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("created_at", yibao.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "insurance_type IN ('employee', 'resident')", name=op.f("ck_benefit_policies_insurance_type")
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_benefit_policies_version_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_benefit_policies")),
        sa.UniqueConstraint(
            "region", "insurance_type", "year", "version", name=op.f("uq_benefit_policies_version")
        ),
    )
    op.create_table(
        "benefit_totals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("hifp_outpatient_fen", sa.BigInteger(), nullable=False),
        sa.Column("hifp_inpatient_fen", sa.BigInteger(), nullable=False),
        sa.Column("hifmi_fen", sa.BigInteger(), nullable=False),
        sa.Column("maf_fen", sa.BigInteger(), nullable=False),
        sa.Column("inpatient_share_fen", sa.BigInteger(), nullable=False),
        sa.Column("deductible_outpatient_fen", sa.BigInteger(), nullable=False),
        sa.Column("deductible_inpatient_fen", sa.BigInteger(), nullable=False),
        sa.Column("settlements", sa.Integer(), nullable=False),
        sa.Column("updated_at", yibao.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "hifp_outpatient_fen >= 0 AND hifp_inpatient_fen >= 0 AND hifmi_fen >= 0 AND maf_fen >= 0"
            " AND inpatient_share_fen >= 0",
            name=op.f("ck_benefit_totals_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_benefit_totals_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_benefit_totals")),
        sa.UniqueConstraint("person_id", "year", name=op.f("uq_benefit_totals_person_year")),
    )


def downgrade() -> None:
    op.drop_table("benefit_totals")
    op.drop_table("benefit_policies")
