"""yibao.prepared: a statement on the driver's cursor stores and reads exactly what SQLAlchemy's
Connection.execute does, in the unit of work's transaction, with SQLAlchemy's errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, event, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from tests.support import Yb
from voucher import queries
from voucher.models import UsageRecord, VoucherUse
from yibao.db import db
from yibao.prepared import Prepared, PreparedRows
from yibao.registry.models import Institution

USAGE = UsageRecord.__table__
USES = VoucherUse.__table__
# The scan's audit columns (voucher.queries.INSERT_USAGE) but the nullable references.
NULLABLE_REFS = ("actor_person_id", "jti", "credential_id")
COLUMNS = tuple(c for c in queries.INSERT_USAGE.params if c not in NULLABLE_REFS)
INSERT_USAGE = Prepared(insert(USAGE), COLUMNS)
USAGE_BY_BIZ = Prepared(
    select(USAGE.c.person_id, USAGE.c.code, USAGE.c.created_at, USAGE.c.kind).where(
        USAGE.c.out_biz_no == bindparam("biz")
    ),
    ("biz",),
)
INSERT_USE = Prepared(insert(USES), ("sub", "jti", "expires_at", "used_at"))


@pytest.fixture
def inst_id(app, client) -> int:  # type: ignore[no-untyped-def]
    org_id = Yb(client).institution().org_id
    with app.app_context(), db.uow(readonly=True) as uow:
        return uow.session.scalar(select(Institution.id).where(Institution.org_id == org_id))


def _values(biz: str, inst_id: int, **over):  # type: ignore[no-untyped-def]
    return {
        "person_id": None,
        "institution_id": inst_id,
        "business_type": "02121",
        "operator_id": "op-1",
        "operator_name": "收银员",
        "device_id": "dev-1",
        "out_biz_no": biz,
        "result": "refused",
        "code": None,
        "created_at": datetime(2026, 12, 1, 8, 30, 15, 123456, tzinfo=timezone(timedelta(hours=8))),
        "kind": "signed",
        **over,
    }


def test_rows_written_and_read_as_sqlalchemy_does(app, inst_id) -> None:  # type: ignore[no-untyped-def]
    """Aware datetimes (another offset), NULLs and text: a row written by Prepared reads back through
    SQLAlchemy equal to its twin written by SQLAlchemy, and Prepared's select equals SQLAlchemy's."""
    with app.app_context():
        with db.uow() as uow:
            INSERT_USAGE.execute(uow, _values("prep-1", inst_id, code="VOUCHER_EXPIRED"))
            uow.core().execute(insert(USAGE), _values("sa-1", inst_id, code="VOUCHER_EXPIRED"))
            uow.commit()
        with db.uow(readonly=True) as uow:
            cols = (USAGE.c.person_id, USAGE.c.code, USAGE.c.created_at, USAGE.c.kind)
            ours = uow.core().execute(select(*cols).where(USAGE.c.out_biz_no == "prep-1")).one()
            theirs = uow.core().execute(select(*cols).where(USAGE.c.out_biz_no == "sa-1")).one()
            assert tuple(ours) == tuple(theirs)
            assert ours.created_at == datetime(2026, 12, 1, 0, 30, 15, 123456, tzinfo=UTC)
            read = USAGE_BY_BIZ.execute(uow, {"biz": "sa-1"})
            assert [tuple(r) for r in read] == [tuple(theirs)]
            assert read[0].created_at.tzinfo is not None and read[0].code == "VOUCHER_EXPIRED"
            assert USAGE_BY_BIZ.execute(uow, {"biz": "nobody"}) == []


def test_runs_in_the_unit_of_work_s_transaction(app, inst_id) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        with db.uow() as uow:
            INSERT_USAGE.execute(uow, _values("rolled-back", inst_id))
            assert len(USAGE_BY_BIZ.execute(uow, {"biz": "rolled-back"})) == 1  # seen inside
            uow.rollback()
        with db.uow(readonly=True) as uow:
            assert USAGE_BY_BIZ.execute(uow, {"biz": "rolled-back"}) == []


def test_a_missing_value_is_refused_before_anything_is_sent(app, inst_id) -> None:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    engine = app.extensions["yibao.db"]["engine"]

    def count(_conn, _cursor, statement, *_):  # type: ignore[no-untyped-def]
        seen.append(statement)

    with app.app_context(), db.uow() as uow:
        uow.core()  # the transaction's own BEGIN is not what is counted
        event.listen(engine, "before_cursor_execute", count)
        try:
            values = _values("no-kind", inst_id)
            del values["kind"]
            with pytest.raises(KeyError):
                INSERT_USAGE.execute(uow, values)
            assert seen == []
            INSERT_USAGE.execute(uow, _values("counted", inst_id))
            assert len(seen) == 1 and seen[0].startswith("INSERT INTO voucher_usage")
        finally:
            event.remove(engine, "before_cursor_execute", count)


def test_parameters_must_be_those_the_statement_binds() -> None:
    from sqlalchemy.dialects import sqlite

    wrong = Prepared(select(USAGE.c.id).where(USAGE.c.out_biz_no == bindparam("biz")), ("biz", "extra"))
    with pytest.raises(ValueError, match="not those named"):
        wrong._compile(sqlite.dialect())


def test_a_unique_violation_is_sqlalchemy_s_integrity_error(app) -> None:  # type: ignore[no-untyped-def]
    row = {"sub": "s-dup", "jti": "j-dup", "expires_at": datetime(2026, 12, 2, tzinfo=UTC)}
    with app.app_context():
        with db.uow() as uow:
            INSERT_USE.execute(uow, {**row, "used_at": datetime.now(UTC)})
            uow.commit()
        with db.uow() as uow, pytest.raises(IntegrityError):
            INSERT_USE.execute(uow, {**row, "used_at": datetime.now(UTC)})
        with db.uow(readonly=True) as uow:
            count = uow.core().execute(select(USES.c.id).where(USES.c.sub == "s-dup")).all()
            assert len(count) == 1


def test_a_lost_connection_is_operational_error_and_the_next_work_reconnects(app, is_postgres) -> None:  # type: ignore[no-untyped-def]
    """The backend is killed under an open unit of work: OperationalError (answered 503 by the
    service) with the connection invalidated; the next unit of work gets a fresh connection."""
    if not is_postgres:
        pytest.skip("an in-process SQLite connection cannot be lost")
    from sqlalchemy import text

    with app.app_context():
        with db.uow() as uow:
            pid = uow.core().execute(text("SELECT pg_backend_pid()")).scalar()
            with db.autocommit() as other:
                other.session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            with pytest.raises(OperationalError) as err:
                USAGE_BY_BIZ.execute(uow, {"biz": "x"})
            assert err.value.connection_invalidated
        with db.uow(readonly=True) as uow:
            assert USAGE_BY_BIZ.execute(uow, {"biz": "x"}) == []


def test_a_statement_s_own_constants_keep_their_values(app, inst_id) -> None:  # type: ignore[no-untyped-def]
    """Literals of the statement (`result = 'refused'`, SET kind = 'offline') are bound by SQLAlchemy
    as parameters; they keep their value, and only the named ones come from the caller."""
    from sqlalchemy import update

    relabel = Prepared(
        update(USAGE)
        .where(USAGE.c.out_biz_no == bindparam("biz"), USAGE.c.result == "refused")
        .values(kind="offline"),
        ("biz",),
    )
    with app.app_context(), db.uow() as uow:
        INSERT_USAGE.execute(uow, _values("const-1", inst_id))
        INSERT_USAGE.execute(uow, _values("const-2", inst_id, result="accepted"))
        assert relabel.run(uow, {"biz": "const-1"}) == 1
        assert relabel.run(uow, {"biz": "const-2"}) == 0  # accepted: the where's constant holds
        kinds = {biz: USAGE_BY_BIZ.execute(uow, {"biz": biz})[0].kind for biz in ("const-1", "const-2")}
        assert kinds == {"const-1": "offline", "const-2": "signed"}
        uow.rollback()


def test_an_untyped_parameter_is_refused_at_compile() -> None:
    """A bind parameter without a type would skip its column's processor (an IN list's, say): SQLite
    would then store or compare a datetime in another text format. Refused when first compiled."""
    from sqlalchemy.dialects import sqlite

    untyped = Prepared(
        select(USAGE.c.id).where(USAGE.c.created_at.in_((bindparam("a"), bindparam("b")))), ("a", "b")
    )
    with pytest.raises(ValueError, match="have no type"):
        untyped._compile(sqlite.dialect())


def test_a_connection_s_own_listener_sees_the_statement(app) -> None:  # type: ignore[no-untyped-def]
    """Listeners on one connection (not the engine) are told too, as SQLAlchemy tells them."""
    seen: list[str] = []
    with app.app_context(), db.uow(readonly=True) as uow:
        conn = uow.core()
        event.listen(conn, "before_cursor_execute", lambda _c, _cur, sql, *_: seen.append(sql))
        USAGE_BY_BIZ.execute(uow, {"biz": "nobody"})
    assert len(seen) == 1 and seen[0].startswith("SELECT voucher_usage.person_id")


def test_a_column_with_a_python_default_must_be_named() -> None:
    """UsageRecord.created_at has default=utcnow and kind default='signed': left out, SQLAlchemy would
    compute them at execution; Prepared does not, so the statement is refused instead of writing NULL."""
    from sqlalchemy.dialects import postgresql, sqlite

    without = Prepared(insert(USAGE), tuple(c for c in COLUMNS if c not in ("created_at", "kind")))
    for dialect in (sqlite.dialect(), postgresql.psycopg.dialect()):
        with pytest.raises(ValueError, match=r"created_at.*kind.*Python-side defaults"):
            without._compile(dialect)


def test_expanding_parameters_are_refused_at_compile() -> None:
    from sqlalchemy.dialects import sqlite

    expanding = Prepared(
        select(USAGE.c.id).where(USAGE.c.out_biz_no.in_(bindparam("bizs", expanding=True))), ("bizs",)
    )
    with pytest.raises(ValueError, match="expanding"):
        expanding._compile(sqlite.dialect())


def test_run_counts_a_returning_statement_s_rows(app, inst_id) -> None:  # type: ignore[no-untyped-def]
    """sqlite3 knows a RETURNING statement's rowcount only once its rows are read: run() reads them."""
    from sqlalchemy import update

    relabel = Prepared(
        update(USAGE)
        .where(USAGE.c.out_biz_no == bindparam("biz"))
        .values(kind="offline")
        .returning(USAGE.c.id),
        ("biz",),
    )
    with app.app_context(), db.uow() as uow:
        INSERT_USAGE.execute(uow, _values("ret-1", inst_id))
        assert relabel.run(uow, {"biz": "ret-1"}) == 1
        assert relabel.run(uow, {"biz": "nobody"}) == 0
        uow.rollback()


def test_core_refuses_an_inactive_session_as_the_session_does(app) -> None:  # type: ignore[no-untyped-def]
    """After a failed flush the session must be rolled back; core() does not hand out the cached
    connection meanwhile (PendingRollbackError, as Session.connection() raises)."""
    from sqlalchemy.exc import PendingRollbackError

    with app.app_context(), db.uow() as uow:
        uow.core()
        uow.session.add(UsageRecord(business_type="02121"))  # NOT NULL columns missing: the flush fails
        with pytest.raises(IntegrityError):
            uow.session.flush()
        with pytest.raises(PendingRollbackError):
            uow.core()
        uow.rollback()
        assert USAGE_BY_BIZ.execute(uow, {"biz": "x"}) == []


# ---------------------------------------------------------------- PreparedRows: one INSERT of n rows

USE_COLUMNS = ("sub", "jti", "expires_at", "used_at")


def _uses_if_new(dialect: str, *, max_rows: int = 16) -> PreparedRows:
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    insert_of = {"postgresql": pg_insert, "sqlite": sqlite_insert}[dialect]
    return PreparedRows(
        lambda values: insert_of(USES).values(values).on_conflict_do_nothing().returning(USES.c.jti),
        USES,
        USE_COLUMNS,
        max_rows=max_rows,
    )


def _use(i: int, sub: str = "rows") -> dict:  # type: ignore[type-arg]
    at = datetime(2026, 12, 1, 8, 30, i % 60, tzinfo=timezone(timedelta(hours=8)))
    return {"sub": sub, "jti": f"j{i:03d}", "expires_at": at + timedelta(minutes=5), "used_at": at}


def test_rows_are_one_statement_and_read_back_as_sqlalchemy_s(app) -> None:  # type: ignore[no-untyped-def]
    """Three rows in one INSERT (the listener sees one statement); read back through SQLAlchemy they
    equal their twins inserted by SQLAlchemy's executemany, aware datetimes converted alike."""
    plain = PreparedRows(lambda values: insert(USES).values(values), USES, USE_COLUMNS)
    seen: list[str] = []
    with app.app_context(), db.uow() as uow:
        event.listen(uow.core(), "before_cursor_execute", lambda _c, _cur, sql, *_: seen.append(sql))
        assert plain.run(uow, [_use(i, "ours") for i in range(3)]) == 3
        uow.core().execute(insert(USES), [_use(i, "theirs") for i in range(3)])
        cols = (USES.c.jti, USES.c.expires_at, USES.c.used_at)
        ours = uow.core().execute(select(*cols).where(USES.c.sub == "ours").order_by(USES.c.jti)).all()
        theirs = uow.core().execute(select(*cols).where(USES.c.sub == "theirs").order_by(USES.c.jti)).all()
        assert [tuple(r) for r in ours] == [tuple(r) for r in theirs] and len(ours) == 3
        assert ours[0].used_at == datetime(2026, 12, 1, 0, 30, 0, tzinfo=UTC)
        inserts = [s for s in seen if s.startswith("INSERT INTO voucher_uses")]
        assert len(inserts) == 2 and inserts[0].count("), (") == 2  # ours: one statement of 3 rows
        assert plain.run(uow, []) == 0  # nothing to insert: no statement
        assert len([s for s in seen if s.startswith("INSERT")]) == 2
        uow.rollback()


def test_many_rows_go_in_chunks_and_return_in_order(app) -> None:  # type: ignore[no-untyped-def]
    """40 rows at 16 a statement: three statements (16, 16, 8), each chunk's RETURNING rows after the
    previous chunk's (within a statement PostgreSQL promises no order: compared as sets)."""
    seen: list[str] = []
    with app.app_context(), db.uow() as uow:
        rows_of = _uses_if_new(uow.dialect)
        event.listen(uow.core(), "before_cursor_execute", lambda _c, _cur, sql, *_: seen.append(sql))
        returned = rows_of.execute(uow, [_use(i) for i in range(40)])
        jtis = [r.jti for r in returned]
        chunks = [jtis[:16], jtis[16:32], jtis[32:]]
        assert [set(c) for c in chunks] == [
            {f"j{i:03d}" for i in r} for r in (range(16), range(16, 32), range(32, 40))
        ]
        assert len(seen) == 3
        assert uow.core().execute(select(USES.c.id).where(USES.c.sub == "rows")).all().__len__() == 40
        uow.rollback()


def test_rows_skipped_on_conflict_are_not_counted(app) -> None:  # type: ignore[no-untyped-def]
    """ON CONFLICT DO NOTHING: run() and execute() count only the rows the database inserted."""
    with app.app_context(), db.uow() as uow:
        rows_of = _uses_if_new(uow.dialect, max_rows=2)
        assert rows_of.run(uow, [_use(0), _use(1)]) == 2
        assert rows_of.run(uow, [_use(0), _use(1), _use(2)]) == 1  # two chunks: (0, 1) skipped, (2)
        assert [r.jti for r in rows_of.execute(uow, [_use(2), _use(3)])] == ["j003"]
        uow.rollback()


def test_a_row_missing_a_column_is_refused_before_anything_is_sent(app) -> None:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    with app.app_context(), db.uow() as uow:
        rows_of = _uses_if_new(uow.dialect)
        event.listen(uow.core(), "before_cursor_execute", lambda _c, _cur, sql, *_: seen.append(sql))
        incomplete = {k: v for k, v in _use(1).items() if k != "used_at"}
        with pytest.raises(KeyError, match="used_at"):
            rows_of.run(uow, [_use(0), incomplete])
        assert seen == []
        uow.rollback()


# Every module that builds Prepared statements at import: imported FIRST in a fresh interpreter, its
# statements must still compile (a parameter typed from a foreign key column before the referenced
# model loaded would be untyped: refused, and every such request would fail).
PREPARED_MODULES = (
    "payments.ledger",
    "payments.queries",
    "payments.idempotency",
    "payments.hospital_pay",
    "supervision.queries",
    "voucher.queries",
    "voucher.offline",
    "benefits.totals",
    "yibao.auth.tokens",
)
_COMPILE_ALL = """
import gc, importlib, sys
first = importlib.import_module(sys.argv[1])
# then every model and every other such module, as a running service has them by its first request
for name in MODELS + PREPARED_MODULES:
    importlib.import_module(name)
from sqlalchemy.dialects import postgresql, sqlite
from yibao.prepared import Prepared, PreparedRows
found = 0
for obj in gc.get_objects():
    if isinstance(obj, PreparedRows):
        objs = [obj._prepared(1), obj._prepared(2)]
    elif isinstance(obj, Prepared):
        objs = [obj]
    else:
        continue
    for prepared in objs:
        compiled = 0
        for dialect in (sqlite.dialect(), postgresql.psycopg.dialect()):
            try:
                prepared._compile(dialect)
                compiled += 1
            except ValueError:
                raise
            except Exception:
                pass  # a dialect's own INSERT (ON CONFLICT ...) compiles on its dialect only
        assert compiled, f"compiles on no dialect: {prepared.statement}"
        found += 1
print(found)
"""


MODELS = (
    "yibao.registry.models",
    "voucher.models",
    "payments.models",
    "supervision.models",
    "benefits.models",
    "family_accounts.models",
    "yibao.auth.models",
)


@pytest.mark.parametrize("module", PREPARED_MODULES)
def test_statements_compile_whatever_module_is_imported_first(module: str) -> None:
    import subprocess
    import sys

    script = f"MODELS = {MODELS!r}\nPREPARED_MODULES = {PREPARED_MODULES!r}\n" + _COMPILE_ALL
    done = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", script, module], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip()) >= 10


@pytest.mark.parametrize(
    ("pyformat", "dollar", "order"),
    [
        ("SELECT %(a)s::INTEGER, %(b)s", "SELECT $1::INTEGER, $2", ("a", "b")),
        ("WHERE x = %(a)s OR y = %(a)s AND z = %(b)s", "WHERE x = $1 OR y = $1 AND z = $2", ("a", "b")),
        ("WHERE name LIKE 'q%%' AND n = %(n_1)s", "WHERE name LIKE 'q%' AND n = $1", ("n_1",)),
        ("SELECT 1", "SELECT 1", ()),
    ],
)
def test_psycopg_statements_get_postgresql_s_own_placeholders_once(pyformat, dollar, order) -> None:  # type: ignore[no-untyped-def]
    from yibao.prepared import _dollar_placeholders

    assert _dollar_placeholders(pyformat) == (dollar, order)


def test_a_statement_past_psycopg_s_query_cache_runs_and_reads_back(app, is_postgres) -> None:  # type: ignore[no-untyped-def]
    """psycopg caches its own placeholder conversion only up to 4 096 characters and 50 parameters;
    Prepared converts once for any size: a 30-row INSERT (120 parameters, one statement) and its rows
    read back."""
    rows_of = PreparedRows(lambda values: insert(USES).values(values), USES, USE_COLUMNS, max_rows=30)
    with app.app_context(), db.uow() as uow:
        assert rows_of.run(uow, [_use(i, "wide") for i in range(30)]) == 30
        if is_postgres:
            compiled = rows_of._prepared(30)._by_dialect[("postgresql", "psycopg")]
            assert compiled.cursor_class is not None and "$120" in compiled.sql and "%(" not in compiled.sql
        got = uow.core().execute(select(USES.c.jti).where(USES.c.sub == "wide")).scalars().all()
        assert sorted(got) == [f"j{i:03d}" for i in range(30)]
        uow.rollback()
