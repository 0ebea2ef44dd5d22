"""benefits: a stored policy version can never be changed (the per-worker cache relies on it)

A settlement records the (policy id, version) it applied, and workers cache parsed versions by it
(benefits/policies.py `parsed`): the database refuses every UPDATE of a benefit_policies row, so a
version never means something else than when it was read. A new document is a new version (PUT).
Deleting a version stays possible (nothing then applies it); a row stored again later has another
created_at, which the cache's key carries.

Revision ID: b0002
Revises: b0001
"""

from __future__ import annotations

from alembic import op

revision = "b0002"
down_revision = "b0001"
branch_labels = None
depends_on = None

MESSAGE = "benefit policy versions are immutable: store a new version instead"

POSTGRES = [
    f"""CREATE FUNCTION benefit_policies_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'integrity_constraint_violation'; END $$""",
    """CREATE TRIGGER benefit_policies_immutable BEFORE UPDATE ON benefit_policies
    FOR EACH ROW EXECUTE FUNCTION benefit_policies_immutable()""",
]
SQLITE = [
    f"""CREATE TRIGGER benefit_policies_immutable BEFORE UPDATE ON benefit_policies
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""",
]


def upgrade() -> None:
    for stmt in POSTGRES if op.get_bind().dialect.name == "postgresql" else SQLITE:
        op.execute(stmt)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS benefit_policies_immutable ON benefit_policies")
        op.execute("DROP FUNCTION IF EXISTS benefit_policies_immutable()")
    else:
        op.execute("DROP TRIGGER IF EXISTS benefit_policies_immutable")
