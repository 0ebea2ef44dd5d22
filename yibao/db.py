"""SQLAlchemy engine, declarative base and the unit of work."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app, g, has_request_context
from sqlalchemy import BigInteger, Connection, DateTime, Engine, Integer, MetaData, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base shared by the shell and every domain package."""

    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Primary keys of tables that grow with traffic (ledger entries, scans): BIGINT on PostgreSQL;
# SQLite's INTEGER PRIMARY KEY is already a 64-bit rowid (and only that spelling autoincrements).
BigId = BigInteger().with_variant(Integer, "sqlite")
# The largest id a client may send, per column type: beyond it the database itself would refuse
# the query (a 400 with a logged stack trace), so schemas refuse it first with a 422.
MAX_ID = 2**63 - 1  # BIGINT (BigId) columns
MAX_INT_ID = 2**31 - 1  # INTEGER id columns (persons, institutions, family tables)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and writer serialization."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take control of BEGIN so writers can start with BEGIN IMMEDIATE.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # A write transaction takes the write lock at BEGIN: SQLite then serializes
            # writers instead of failing one of them with SQLITE_BUSY on lock upgrade.
            opts = conn.get_execution_options()
            if opts.get("yb_autocommit"):
                return  # db.autocommit(): no transaction, each statement commits on its own
            # Straight to the driver: a SQLAlchemy statement (exec_driver_sql) per transaction cost
            # more CPU than the BEGIN itself (its own dispatch, cursor wrapper and result).
            begin = "BEGIN" if opts.get("yb_readonly") else "BEGIN IMMEDIATE"
            try:
                conn.connection.driver_connection.execute(begin)
            except sqlite3.Error as exc:  # as SQLAlchemy would wrap it: a locked database is a 503
                raise DBAPIError.instance(begin, (), exc, sqlite3.Error, hide_parameters=True) from exc

        return engine
    # No pre-ping: it cost a round trip on every checkout, i.e. on every unit of work of the hot paths.
    # A connection that died (database restart, failover) fails its next statement with an
    # OperationalError; SQLAlchemy then invalidates the whole pool (connection_invalidated) and the
    # request answers 503 DATABASE_UNAVAILABLE (yibao/errors.py), so after a restart each worker
    # refuses at most one request and reconnects on the next; clients retry 503s. pool_recycle
    # replaces connections older than 30 minutes (idle timeouts of proxies and firewalls).
    # A sync gunicorn worker uses one connection at a time (a few with nested work): 5 + 10 suffices.
    # hide_parameters: a failed statement's error text (logged) must not carry the bound values,
    # which include personal data (operator names, birth dates).
    return create_engine(
        url, pool_pre_ping=False, pool_recycle=1800, pool_size=5, max_overflow=10, hide_parameters=True
    )


class Database:
    """Flask extension holding the engine and session factories."""

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        engine = make_engine(app.config["DATABASE_URL"])
        app.extensions["yibao.db"] = {
            "engine": engine,
            "write": sessionmaker(engine, expire_on_commit=False),
            "read": sessionmaker(engine.execution_options(yb_readonly=True), expire_on_commit=False),
        }
        app.extensions["yibao.db"]["auto"] = sessionmaker(autocommit_engine(engine), expire_on_commit=False)
        app.teardown_request(_close_request_reads)

    @staticmethod
    def _ext() -> dict:
        return current_app.extensions["yibao.db"]

    @property
    def engine(self) -> Engine:
        return self._ext()["engine"]

    def uow(self, *, readonly: bool = False) -> UnitOfWork:
        """A unit of work on the current app's database: a transaction that commits only on commit()."""
        return UnitOfWork(self._ext()["read" if readonly else "write"])

    def autocommit(self) -> AutocommitWork:
        """Work that is ONE statement (a lookup, an INSERT ... ON CONFLICT ... RETURNING), no transaction.

        Each statement commits on its own, on both databases alike: no BEGIN and no COMMIT/ROLLBACK
        round trips (the hot paths' reads and the idempotency claim). Never use it for several
        statements that must be atomic, or for locks (FOR UPDATE would be released at once);
        commit() is refused so that a misuse fails on SQLite exactly as it would on PostgreSQL.
        """
        return AutocommitWork(self._ext()["auto"])

    def request_reads(self) -> AutocommitWork:
        """The request's shared autocommit work (see autocommit): one session and one pool checkout
        for the authentication's lookup and the view's reads (a user's issuance), not one each.

        For reads only: the session lives until the request ends, so an entity it loaded would not
        see later writes of the same request. Outside a request it is a plain autocommit().
        """
        if not has_request_context():
            return self.autocommit()
        work = g.get(_REQUEST_READS)
        if work is None:
            work = _RequestReads(self._ext()["auto"])
            setattr(g, _REQUEST_READS, work)
        return work


_REQUEST_READS = "_yb_request_reads"


def _close_request_reads(_exc: BaseException | None) -> None:
    work = g.pop(_REQUEST_READS, None)
    if work is not None:
        work.close()


class UnitOfWork:
    """A session that rolls back unless commit() was called."""

    # core()'s connection; a class default too, for subclasses that share another unit of work's
    # session without calling __init__ (payments.web.RequestWork).
    _conn: Connection | None = None

    def __init__(self, factory: sessionmaker) -> None:
        self._factory = factory
        self.session: Session
        self._conn: Connection | None = None  # core()'s connection while its transaction lasts

    def __enter__(self) -> UnitOfWork:
        self.session = self._factory()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        # close() alone also rolls back the open transaction, but without expiring the loaded
        # objects, so a view may still serialize what a read-only uow returned.
        try:
            if exc_type is not None:
                self.session.rollback()
        finally:
            self.session.close()

    def commit(self) -> None:
        self.session.commit()

    def core(self) -> Connection:
        """The connection of this unit of work's transaction, for prebuilt Core statements (built on
        tables, not mapped classes) of the hot paths: it runs them without the session's execute step.
        Session.execute does not autoflush for such statements either, so nothing changes but the cost.

        The connection is kept while it is open: the session closes it when its transaction ends
        (commit, rollback, close), and the next call then takes the new transaction's connection.
        """
        conn = self._conn
        if conn is None or conn.closed or not self.session.is_active:
            # (an inactive session, after a failed flush, refuses here as Session.connection() does)
            conn = self._conn = self.session.connection()
        return conn

    def rollback(self) -> None:
        self.session.rollback()

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name


class AutocommitWork(UnitOfWork):
    """A session whose statements each commit on their own (see Database.autocommit)."""

    def commit(self) -> None:
        raise RuntimeError("autocommit work has nothing to commit: each statement committed itself")


class _RequestReads(AutocommitWork):
    """Entered several times in one request; closed at its end (or at once after an error, so a
    failed statement's connection is not used again)."""

    _open = False

    def __enter__(self) -> UnitOfWork:
        if not self._open:
            self.session = self._factory()
            self._open = True
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.close()
            g.pop(_REQUEST_READS, None)

    def close(self) -> None:
        if self._open:
            self._open = False
            self.session.close()


def autocommit_engine(engine: Engine) -> Engine:
    """The same pool with statements committing on their own, on PostgreSQL and SQLite alike."""
    if engine.dialect.name == "sqlite":
        # The connections run with the driver's isolation_level=None (no implicit BEGIN); the
        # begin listener above skips its BEGIN for this option, so each statement autocommits.
        return engine.execution_options(yb_autocommit=True, yb_readonly=True)
    return engine.execution_options(isolation_level="AUTOCOMMIT", yb_readonly=True)


@contextmanager
def uow_from(engine: Engine, *, readonly: bool = False) -> Iterator[UnitOfWork]:
    """A unit of work outside a request (CLI, workers, tests)."""
    factory = sessionmaker(
        engine.execution_options(yb_readonly=True) if readonly else engine, expire_on_commit=False
    )
    with UnitOfWork(factory) as uow:
        yield uow


db = Database()
