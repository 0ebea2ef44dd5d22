"""The unit-of-work helpers behave alike on SQLite and PostgreSQL (statements counted on the wire)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, text

from yibao.db import db


@contextmanager
def statements(app) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    """Every SQL text sent to the driver, BEGIN/COMMIT/ROLLBACK included."""
    seen: list[str] = []
    engine = app.extensions["yibao.db"]["engine"]

    def on_execute(conn, cursor, statement, *_):  # type: ignore[no-untyped-def]
        seen.append(statement.strip().split()[0].upper())

    def on_commit(conn):  # type: ignore[no-untyped-def]
        seen.append("COMMIT")

    def on_rollback(conn):  # type: ignore[no-untyped-def]
        seen.append("ROLLBACK")

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    event.listen(engine, "rollback", on_rollback)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "commit", on_commit)
        event.remove(engine, "rollback", on_rollback)


def _warm(app) -> None:  # type: ignore[no-untyped-def]
    # The first checkout of a pool runs the dialect's own probes and the connect PRAGMAs.
    with app.app_context(), db.uow(readonly=True) as uow:
        uow.session.execute(text("SELECT 1"))


def test_autocommit_sends_one_statement_and_no_transaction(app) -> None:  # type: ignore[no-untyped-def]
    _warm(app)
    with app.app_context(), statements(app) as seen, db.autocommit() as uow:
        assert uow.session.execute(text("SELECT 1")).scalar() == 1
    assert [s for s in seen if s not in ("COMMIT", "ROLLBACK")] == ["SELECT"], seen
    assert "BEGIN" not in seen


def test_autocommit_write_is_visible_at_once_without_commit(app) -> None:  # type: ignore[no-untyped-def]
    """A single INSERT commits by itself on both databases: another connection sees it."""
    with app.app_context():
        with db.uow() as uow:
            uow.session.execute(text("CREATE TABLE IF NOT EXISTS yb_probe (v INTEGER)"))
            uow.commit()
        with db.autocommit() as uow:
            uow.session.execute(text("INSERT INTO yb_probe (v) VALUES (7)"))
            with db.uow(readonly=True) as other:
                assert other.session.execute(text("SELECT v FROM yb_probe")).scalar() == 7


def test_autocommit_refuses_commit(app) -> None:  # type: ignore[no-untyped-def]
    """Calling commit() on autocommit work is a bug on every database, not only on PostgreSQL."""
    with app.app_context(), db.autocommit() as uow, pytest.raises(RuntimeError, match="nothing to commit"):
        uow.commit()


def test_unit_of_work_rolls_back_without_commit(app) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        with db.uow() as uow:
            uow.session.execute(text("CREATE TABLE IF NOT EXISTS yb_probe2 (v INTEGER)"))
            uow.commit()
        with db.uow() as uow:
            uow.session.execute(text("INSERT INTO yb_probe2 (v) VALUES (1)"))
        with db.uow(readonly=True) as uow:
            assert uow.session.execute(text("SELECT count(*) FROM yb_probe2")).scalar() == 0


def _sqlite_path(app) -> str | None:  # type: ignore[no-untyped-def]
    url = app.extensions["yibao.db"]["engine"].url
    return url.database if url.get_backend_name() == "sqlite" else None


def test_sqlite_write_unit_takes_the_write_lock_at_begin(app) -> None:  # type: ignore[no-untyped-def]
    """BEGIN IMMEDIATE (sent straight to the driver) for writes, a plain BEGIN for reads."""
    import sqlite3

    path = _sqlite_path(app)
    if path is None:
        pytest.skip("SQLite's BEGIN IMMEDIATE")
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        with app.app_context():
            with db.uow(readonly=True) as uow:
                uow.session.execute(text("SELECT 1"))
                other.execute("BEGIN IMMEDIATE")  # a reader holds no write lock
                other.execute("ROLLBACK")
            with db.uow() as uow:
                uow.session.execute(text("SELECT 1"))  # a read first: the lock is already taken
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
    finally:
        other.close()


def test_sqlite_locked_begin_is_a_sqlalchemy_error(app) -> None:  # type: ignore[no-untyped-def]
    """A BEGIN IMMEDIATE that times out is wrapped like any statement's error (answered 503)."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    path = _sqlite_path(app)
    if path is None:
        pytest.skip("SQLite's BEGIN IMMEDIATE")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with app.extensions["yibao.db"]["engine"].connect() as conn:
            driver = conn.connection.driver_connection
            driver.execute("PRAGMA busy_timeout=0")
            try:
                with pytest.raises(OperationalError, match="locked"):
                    conn.begin()
            finally:
                driver.execute("PRAGMA busy_timeout=30000")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_request_reads_share_one_session_until_the_request_ends(app) -> None:  # type: ignore[no-untyped-def]
    with app.test_request_context("/"):
        with db.request_reads() as first:
            assert first.session.execute(text("SELECT 1")).scalar() == 1
            session = first.session
        with db.request_reads() as second:
            assert second.session is session  # the authentication's and the view's reads: one checkout
        with pytest.raises(RuntimeError, match="nothing to commit"):
            second.commit()
        with pytest.raises(ZeroDivisionError), db.request_reads():
            _ = 1 / 0
        with db.request_reads() as after_error:
            assert after_error.session is not session  # never reused after an error
            session = after_error.session
            assert session.execute(text("SELECT 2")).scalar() == 2
    assert app.extensions["yibao.db"]["engine"].pool.checkedout() == 0  # returned when the request ended


def test_core_connection_lasts_one_transaction(app) -> None:  # type: ignore[no-untyped-def]
    """uow.core() hands out one connection per transaction: the same one until commit or rollback,
    then the next transaction's; what was rolled back is gone and what was committed stays."""
    with app.app_context():
        with db.uow() as uow:
            uow.core().execute(text("CREATE TABLE IF NOT EXISTS yb_core_probe (v INTEGER)"))
            uow.commit()
        with db.uow() as uow:
            first = uow.core()
            assert uow.core() is first
            first.execute(text("INSERT INTO yb_core_probe (v) VALUES (1)"))
            uow.commit()
            assert first.closed
            second = uow.core()
            assert second is not first and not second.closed
            second.execute(text("INSERT INTO yb_core_probe (v) VALUES (2)"))
            uow.rollback()
            third = uow.core()
            assert third is not second
            assert sorted(third.execute(text("SELECT v FROM yb_core_probe")).scalars()) == [1]
        with db.uow() as uow:
            uow.core().execute(text("DROP TABLE yb_core_probe"))
            uow.commit()
