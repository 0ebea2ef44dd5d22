"""supervision_sale_days: per-day totals of the counted sales; the sales' window index becomes covering

Issue 16: an order rule's window sum read every sale of the person's code inside the window (a heap
fetch each), so pay's cost grew with the person's history. Now a window is
  its full UTC days, from supervision_sale_days (one row per person, code, day and institution), plus
  the rows of its first, partial day, from supervision_sales (queries.sales_in_windows),
so it reads at most one row per day and institution plus one day's sales, however many it holds.

supervision_sale_days holds, per (person_id, code, day, institution_id), the SUM(quantity - released)
of the sales of that day (`day` is its 00:00 UTC). Database triggers on supervision_sales keep it, in
the writing statement's own transaction, on every INSERT, UPDATE and DELETE (and TRUNCATE on
PostgreSQL), whoever writes: record_sale's insert (a retried order's ON CONFLICT DO NOTHING inserts
nothing and so adds nothing), record_refund's updates of `released`, bulk seeding, hand-typed SQL. A
row trigger sees the row's old and new values under the row's lock, so concurrent refunds of one
order add up exactly. Existing sales are totalled here.

ix_supervision_sales_person_code_sold_at becomes covering: INCLUDE (institution_id, quantity,
released) on PostgreSQL, the same columns appended to the key on SQLite, so the partial day's sum is an
index-only scan (on PostgreSQL as far as the visibility map allows: autovacuum keeps it).

Revision ID: s0003
Revises: s0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import yibao.db

revision = "s0003"
down_revision = "s0002"
branch_labels = None
depends_on = None

INDEX = "ix_supervision_sales_person_code_sold_at"
KEY = ["person_id", "code", "sold_at"]
COVERED = ["institution_id", "quantity", "released"]
_CONFLICT = "ON CONFLICT (person_id, code, day, institution_id) DO UPDATE SET units = supervision_sale_days.units + excluded.units"  # noqa: E501

_PG_DAY = "date_trunc('day', {row}.sold_at, 'UTC')"
POSTGRES = [
    f"""CREATE FUNCTION supervision_sale_days_count() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.released < OLD.quantity THEN
        UPDATE supervision_sale_days SET units = units - (OLD.quantity - OLD.released)
        WHERE person_id = OLD.person_id AND code = OLD.code AND day = {_PG_DAY.format(row="OLD")}
          AND institution_id = OLD.institution_id;
      END IF;
      IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.released < NEW.quantity THEN
        INSERT INTO supervision_sale_days (person_id, code, day, institution_id, units)
        VALUES (NEW.person_id, NEW.code, {_PG_DAY.format(row="NEW")}, NEW.institution_id,
                NEW.quantity - NEW.released)
        {_CONFLICT};
      END IF;
      RETURN NULL;
    END $$""",  # noqa: S608 (constant SQL)
    """CREATE TRIGGER supervision_sale_days_count AFTER INSERT OR UPDATE OR DELETE ON supervision_sales
    FOR EACH ROW EXECUTE FUNCTION supervision_sale_days_count()""",
    """CREATE FUNCTION supervision_sale_days_clear() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN DELETE FROM supervision_sale_days; RETURN NULL; END $$""",
    """CREATE TRIGGER supervision_sale_days_clear AFTER TRUNCATE ON supervision_sales
    FOR EACH STATEMENT EXECUTE FUNCTION supervision_sale_days_clear()""",
    f"""INSERT INTO supervision_sale_days (person_id, code, day, institution_id, units)
    SELECT person_id, code, {_PG_DAY.format(row="supervision_sales")}, institution_id,
           SUM(quantity - released)
    FROM supervision_sales WHERE released < quantity GROUP BY 1, 2, 3, 4""",  # noqa: S608 (constant SQL)
]

# SQLite stores UTCDateTime as 'YYYY-MM-DD HH:MM:SS.ffffff' (naive UTC): the day is the same text at
# midnight, which is how SQLAlchemy binds the day boundaries the reads compare it with.
_SQLITE_DAY = "substr({row}.sold_at, 1, 10) || ' 00:00:00.000000'"
_SQLITE_SUBTRACT = f"""UPDATE supervision_sale_days SET units = units - (OLD.quantity - OLD.released)
    WHERE OLD.released < OLD.quantity AND person_id = OLD.person_id AND code = OLD.code
      AND day = {_SQLITE_DAY.format(row="OLD")} AND institution_id = OLD.institution_id"""  # noqa: S608 (constant SQL)
_SQLITE_ADD = f"""INSERT INTO supervision_sale_days (person_id, code, day, institution_id, units)
    SELECT NEW.person_id, NEW.code, {_SQLITE_DAY.format(row="NEW")}, NEW.institution_id,
           NEW.quantity - NEW.released
    WHERE NEW.released < NEW.quantity
    {_CONFLICT}"""
SQLITE = [
    f"CREATE TRIGGER supervision_sale_days_insert AFTER INSERT ON supervision_sales BEGIN {_SQLITE_ADD}; END",
    f"""CREATE TRIGGER supervision_sale_days_update AFTER UPDATE ON supervision_sales
    BEGIN {_SQLITE_SUBTRACT}; {_SQLITE_ADD}; END""",
    f"""CREATE TRIGGER supervision_sale_days_delete AFTER DELETE ON supervision_sales
    BEGIN {_SQLITE_SUBTRACT}; END""",
    f"""INSERT INTO supervision_sale_days (person_id, code, day, institution_id, units)
    SELECT person_id, code, {_SQLITE_DAY.format(row="supervision_sales")}, institution_id,
           SUM(quantity - released)
    FROM supervision_sales WHERE released < quantity GROUP BY 1, 2, 3, 4""",  # noqa: S608 (constant SQL)
]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "supervision_sale_days",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("day", yibao.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.CheckConstraint("units >= 0", name=op.f("ck_supervision_sale_days_units")),
        sa.PrimaryKeyConstraint(
            "person_id", "code", "day", "institution_id", name=op.f("pk_supervision_sale_days")
        ),
        sqlite_with_rowid=False,  # SQLite: the rows are the key's b-tree (the sums read nothing else)
    )
    op.drop_index(INDEX, table_name="supervision_sales")
    if postgres:
        op.create_index(INDEX, "supervision_sales", KEY, postgresql_include=COVERED)
    else:
        op.create_index(INDEX, "supervision_sales", KEY + COVERED)
    for stmt in POSTGRES if postgres else SQLITE:
        op.execute(stmt)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS supervision_sale_days_count ON supervision_sales")
        op.execute("DROP TRIGGER IF EXISTS supervision_sale_days_clear ON supervision_sales")
        op.execute("DROP FUNCTION IF EXISTS supervision_sale_days_count()")
        op.execute("DROP FUNCTION IF EXISTS supervision_sale_days_clear()")
    else:
        for op_ in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS supervision_sale_days_{op_}")
    op.drop_index(INDEX, table_name="supervision_sales")
    op.create_index(INDEX, "supervision_sales", KEY)
    op.drop_table("supervision_sale_days")
