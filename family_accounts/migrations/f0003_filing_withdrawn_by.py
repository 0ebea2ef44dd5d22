"""mutual_aid_filings.withdrawn_by: which side ended a withdrawn filing (the member may now withdraw consent)

Until now only the holder could withdraw, so every existing withdrawn filing is marked `holder`.

Revision ID: f0003
Revises: f0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "f0003"
down_revision = "f0002"
branch_labels = None
depends_on = None

TABLE = "mutual_aid_filings"
# family_accounts.models.WITHDRAWN_BY_SQL when this was written
WITHDRAWN_BY = "(status = 'withdrawn') = (withdrawn_by IS NOT NULL) AND withdrawn_by IN ('holder', 'member')"


def upgrade() -> None:
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.add_column(sa.Column("withdrawn_by", sa.String(length=8), nullable=True))
    op.execute("UPDATE mutual_aid_filings SET withdrawn_by = 'holder' WHERE status = 'withdrawn'")
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.create_check_constraint(batch_op.f(f"ck_{TABLE}_withdrawn_by"), WITHDRAWN_BY)


def downgrade() -> None:
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f(f"ck_{TABLE}_withdrawn_by"), type_="check")
        batch_op.drop_column("withdrawn_by")
