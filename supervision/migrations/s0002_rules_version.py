"""supervision_rules_state: the enabled rules' version, bumped by the database on every change of a rule

One row (id = 1), created here. Triggers on supervision_rules bump it on every INSERT, UPDATE or DELETE
(and TRUNCATE on PostgreSQL), whoever sends it: the admin API, the CLI or hand-typed SQL. The hot paths
read it in their first statement and reload their worker's cached rules when it differs
(supervision/rule_cache.py).

PostgreSQL: a statement-level PL/pgSQL trigger sets the version from a sequence, which never hands a
number out twice, even to a rolled-back transaction. SQLite (no sequences, and a rolled-back UPDATE
gives its number back): AFTER triggers add one plus a random step below 2^30, so a number a rolled-back
transaction took is practically never the next committed one. Caches compare versions for equality
only. The row cannot be deleted on either database.

Revision ID: s0002
Revises: s0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0002"
down_revision = "s0001"
branch_labels = None
depends_on = None

POSTGRES = [
    "CREATE SEQUENCE supervision_rules_version_seq",
    """CREATE FUNCTION supervision_rules_bump() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE supervision_rules_state SET version = nextval('supervision_rules_version_seq') WHERE id = 1;
      RETURN NULL;
    END $$""",
    """CREATE TRIGGER supervision_rules_bump AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON supervision_rules FOR EACH STATEMENT EXECUTE FUNCTION supervision_rules_bump()""",
    """CREATE FUNCTION supervision_rules_state_kept() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'supervision: the rules version row is kept (% refused)', TG_OP
      USING ERRCODE = 'integrity_constraint_violation'; END $$""",
    """CREATE TRIGGER supervision_rules_state_no_delete BEFORE DELETE ON supervision_rules_state
    FOR EACH ROW EXECUTE FUNCTION supervision_rules_state_kept()""",
    """CREATE TRIGGER supervision_rules_state_no_truncate BEFORE TRUNCATE ON supervision_rules_state
    FOR EACH STATEMENT EXECUTE FUNCTION supervision_rules_state_kept()""",
    "INSERT INTO supervision_rules_state (id, version) VALUES (1, nextval('supervision_rules_version_seq'))",
]

_SQLITE_BUMP = (
    "UPDATE supervision_rules_state SET version = version + 1 + (random() & 1073741823) WHERE id = 1"
)
SQLITE = [
    *(
        f"CREATE TRIGGER supervision_rules_bump_{op_} AFTER {op_.upper()} ON supervision_rules"
        f" BEGIN {_SQLITE_BUMP}; END"
        for op_ in ("insert", "update", "delete")
    ),
    """CREATE TRIGGER supervision_rules_state_no_delete BEFORE DELETE ON supervision_rules_state
    BEGIN SELECT RAISE(ABORT, 'supervision: the rules version row is kept'); END""",
    "INSERT INTO supervision_rules_state (id, version) VALUES (1, 1)",
]


def upgrade() -> None:
    op.create_table(
        "supervision_rules_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_supervision_rules_state_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supervision_rules_state")),
    )
    for stmt in POSTGRES if op.get_bind().dialect.name == "postgresql" else SQLITE:
        op.execute(stmt)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS supervision_rules_bump ON supervision_rules")
        op.execute("DROP TABLE supervision_rules_state")
        op.execute("DROP FUNCTION IF EXISTS supervision_rules_bump()")
        op.execute("DROP FUNCTION IF EXISTS supervision_rules_state_kept()")
        op.execute("DROP SEQUENCE IF EXISTS supervision_rules_version_seq")
        return
    for op_ in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS supervision_rules_bump_{op_}")
    op.drop_table("supervision_rules_state")
