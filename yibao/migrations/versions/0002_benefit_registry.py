"""shell: person retired / assistance_category, institution level (issue 15)

Revision ID: 0002_benefit_registry
Revises: 0001_shell
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_benefit_registry"
down_revision = "0001_shell"
branch_labels = None
depends_on = None


SQLITE_ADD = (
    "ALTER TABLE persons ADD COLUMN retired BOOLEAN DEFAULT 0 NOT NULL"
    " CONSTRAINT ck_persons_retired_employee CHECK (insurance_type = 'employee' OR NOT retired)",
    "ALTER TABLE persons ADD COLUMN assistance_category VARCHAR(16) DEFAULT 'none' NOT NULL"
    " CONSTRAINT ck_persons_assistance_category"
    " CHECK (assistance_category IN ('none', 'dibao', 'tekun', 'low_income'))",
    "ALTER TABLE institutions ADD COLUMN level VARCHAR(16) DEFAULT 'secondary' NOT NULL"
    " CONSTRAINT ck_institutions_level CHECK (level IN ('primary', 'secondary', 'tertiary'))",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # ADD COLUMN in place: batch mode would recreate persons, and DROP TABLE fails on referencing rows.
        for statement in SQLITE_ADD:
            op.execute(statement)
        return
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retired", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(
            sa.Column("assistance_category", sa.String(length=16), server_default="none", nullable=False)
        )
        batch_op.create_check_constraint(
            op.f("ck_persons_retired_employee"), "insurance_type = 'employee' OR NOT retired"
        )
        batch_op.create_check_constraint(
            op.f("ck_persons_assistance_category"),
            "assistance_category IN ('none', 'dibao', 'tekun', 'low_income')",
        )
    with op.batch_alter_table("institutions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("level", sa.String(length=16), server_default="secondary", nullable=False)
        )
        batch_op.create_check_constraint(
            op.f("ck_institutions_level"), "level IN ('primary', 'secondary', 'tertiary')"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite would recreate persons and institutions (batch mode), and DROP TABLE fails on the rows
        # that reference them; the columns have server defaults, so older code runs with them left in place.
        return
    with op.batch_alter_table("institutions", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_institutions_level"), type_="check")
        batch_op.drop_column("level")
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_persons_assistance_category"), type_="check")
        batch_op.drop_constraint(op.f("ck_persons_retired_employee"), type_="check")
        batch_op.drop_column("assistance_category")
        batch_op.drop_column("retired")
