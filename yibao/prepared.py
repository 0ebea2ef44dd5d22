"""Prebuilt statements run on the driver's cursor: the hot paths' few statements without SQLAlchemy's
per-execution machinery (execution context, result wrapping, event dispatch), on both databases.

    USE = Prepared(insert(VoucherUse.__table__), ("sub", "jti", "expires_at", "used_at"))
    USE.execute(uow, {"sub": ..., ...})     # -> rows (NamedTuples of the selected columns, with _mapping)
    MOVE.run(uow, {...})                    # -> the driver's rowcount (an UPDATE or DELETE)

What stays exactly as with `Connection.execute`:

* the statement text is SQLAlchemy's own compilation for the dialect (built once per dialect), and
  every value goes through the column type's bind processor, every selected value through its result
  processor (UTCDateTime, JSON, Boolean on SQLite...), so what is stored and read is the same;
* it runs on the unit of work's connection, inside its transaction (the SQLite BEGIN IMMEDIATE and the
  writer turn included): commit and rollback are the unit of work's, as before;
* a driver error is raised as SQLAlchemy's wrapped error (IntegrityError, OperationalError...), so the
  service's handlers answer it as before (a lost database is 503 DATABASE_UNAVAILABLE), and a
  disconnect invalidates the connection (and with it the pool) as SQLAlchemy would;
* listeners of the before_cursor_execute event (the engine's or the connection's) still see each
  statement (the tests that count statements on the wire count these too).

What is asked of a caller: name every parameter at construction (`params`): no Python-side column
defaults or onupdate values are applied here, so an INSERT or UPDATE must list every such column it
writes (one left out is refused at the first compile, never written as NULL), and a value must be given
for each (a missing one is a KeyError). Parameters need a type (an IN list's do not take the column's:
refused), and expanding or literal-execute parameters are refused. INSERTs are compiled inline: no
implicit RETURNING of the new primary key.

What it does not do, by design: no after_cursor_execute event, and before_cursor_execute listeners get
no execution context (context=None) and cannot rewrite the statement (retval listeners): tracing that
needs SQLAlchemy's context sees these statements only through the driver.
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.expression import Executable

from yibao.db import UnitOfWork


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positional: tuple[str, ...] | None  # the parameters' order for a positional (qmark, $n) statement
    constants: tuple[tuple[str, Any], ...]  # (name, value) of the statement's own bound constants
    binds: tuple[tuple[str, Any], ...]  # (name, bind processor) of the parameters that have one
    row: Any  # NamedTuple class of the selected columns, or None
    results: tuple[Any, ...]  # a result processor (or None) per selected column
    # psycopg: the SQL has PostgreSQL's own $n placeholders and runs on this cursor class (RawCursor)
    cursor_class: Any = None


class Prepared:
    """One statement, compiled once per dialect, executed on the DBAPI cursor of a unit of work."""

    def __init__(self, statement: Executable, params: Sequence[str]) -> None:
        if isinstance(statement, Insert):
            statement = statement.inline()  # no implicit RETURNING of the primary key
        self.statement = statement
        self.params = tuple(params)
        self._by_dialect: dict[tuple[str, str], _Compiled] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect, column_keys=list(self.params))
        # Python-side defaults and onupdate values SQLAlchemy would compute at execution: not done here,
        # so such a column must be given (else it would be written as NULL).
        defaulted = sorted(
            c.key for c in (*compiled.insert_prefetch, *compiled.update_prefetch) if c.key not in self.params
        )
        if defaulted:
            raise ValueError(f"columns {defaulted} have Python-side defaults: name them in params")
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        late = sorted(n for n, b in by_name.items() if b.expanding or b.literal_execute)
        if late or "POSTCOMPILE" in compiled.string:  # rendered at execution by SQLAlchemy only
            raise ValueError(f"expanding or literal-execute parameters {late} are not supported")
        unknown = set(self.params) - set(by_name)
        unnamed = {n for n, b in by_name.items() if n not in self.params and b.required}
        if unknown or unnamed:
            raise ValueError(
                f"statement parameters {sorted(by_name)} are not those named {sorted(self.params)}"
            )
        untyped = sorted(n for n in self.params if by_name[n].type._isnull)  # noqa: SLF001
        if untyped:  # no bind processor would run: e.g. a datetime stored in SQLite's text format
            raise ValueError(f"parameters {untyped} have no type: give their bindparam a type_")
        # the statement's own constants (`balance + :fen >= 0`, `state = 'in_progress'`) keep their value
        constants = tuple((n, b.effective_value) for n, b in by_name.items() if n not in self.params)
        processors = compiled._bind_processors  # noqa: SLF001 - the compiled statement's own processors
        binds = tuple((name, processors[name]) for name in by_name if name in processors)
        columns = compiled._result_columns  # noqa: SLF001 - (keyname, name, objects, type) per column
        row = _row_class([c.keyname for c in columns]) if columns else None
        results = tuple(c.type._cached_result_processor(dialect, None) for c in columns)  # noqa: SLF001
        if dialect.driver == "psycopg" and not compiled.positional:
            from psycopg import RawCursor

            sql, order = _dollar_placeholders(compiled.string)
            return _Compiled(sql, order, constants, binds, row, results, cursor_class=RawCursor)
        positional = tuple(compiled.positiontup or ()) if compiled.positional else None
        return _Compiled(compiled.string, positional, constants, binds, row, results)

    def execute(self, uow: UnitOfWork, values: Mapping[str, Any]) -> list[Any]:
        """Run with these values in the unit of work's transaction; the selected rows (or [])."""
        return self._execute(uow, values)[0]

    def first(self, uow: UnitOfWork, values: Mapping[str, Any]) -> Any:
        """The first selected row, or None."""
        rows = self._execute(uow, values)[0]
        return rows[0] if rows else None

    def run(self, uow: UnitOfWork, values: Mapping[str, Any]) -> int:
        """Run with these values in the unit of work's transaction; how many rows it changed."""
        return self._execute(uow, values)[1]

    def _execute(self, uow: UnitOfWork, values: Mapping[str, Any]) -> tuple[list[Any], int]:
        conn = uow.core()
        dialect = conn.dialect
        key = (dialect.name, dialect.driver)  # the SQL text differs by driver (casts, paramstyle)
        compiled = self._by_dialect.get(key)
        if compiled is None:
            compiled = self._by_dialect[key] = self._compile(dialect)
        params = {name: values[name] for name in self.params}
        params.update(compiled.constants)
        for name, process in compiled.binds:
            params[name] = process(params[name])
        args: Any = params if compiled.positional is None else [params[n] for n in compiled.positional]
        return _run(conn, compiled, args)


_PYFORMAT = re.compile(r"%%|%\(([^)]+)\)s")


def _dollar_placeholders(sql: str) -> tuple[str, tuple[str, ...]]:
    """SQLAlchemy's pyformat SQL (`%(name)s`, a literal % as `%%`) with PostgreSQL's own placeholders
    ($1, $2...; a name used twice is one placeholder) and the names in placeholder order.

    psycopg converts pyformat to $n on every execution, and caches that only for statements of at most
    4 096 characters and 50 parameters (a PreparedRows INSERT of 16 rows has more; so had supervision's
    window sums of 20 rules before they became one JSON parameter: ~0.5 ms of parsing per pay);
    converted here once, the statement runs on a RawCursor with a list of values."""
    order: list[str] = []

    def place(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        if name not in order:
            order.append(name)
        return f"${order.index(name) + 1}"

    return _PYFORMAT.sub(place, sql), tuple(order)


def _row_class(names: list[str]) -> Any:
    """A NamedTuple of the selected columns that also offers SQLAlchemy Row's `_mapping`."""
    base = namedtuple("Row", names)  # noqa: PYI024 - built at run time from the statement
    return type("Row", (base,), {"__slots__": (), "_mapping": property(lambda r: r._asdict())})


def _run(conn: Connection, compiled: _Compiled, args: Any) -> tuple[list[Any], int]:
    dbapi_conn = conn.connection.driver_connection
    engine = conn.engine
    cursor = compiled.cursor_class(dbapi_conn) if compiled.cursor_class else dbapi_conn.cursor()  # type: ignore[union-attr]
    try:
        # the connection's dispatch joins the engine's listeners and those of this connection
        for listener in conn.dispatch.before_cursor_execute:
            listener(conn, cursor, compiled.sql, args, None, False)
        cursor.execute(compiled.sql, args)
        if compiled.row is None:
            return [], cursor.rowcount
        rows = cursor.fetchall()
        count = cursor.rowcount  # after the rows: sqlite3 counts a RETURNING statement's rows as read
    except conn.dialect.loaded_dbapi.Error as exc:
        disconnect = conn.dialect.is_disconnect(exc, conn.connection, cursor)
        if disconnect:  # as SQLAlchemy's own handler: the whole pool, then this connection
            engine.pool._invalidate(conn.connection, exc)  # noqa: SLF001
            conn.invalidate(exc)
        raise DBAPIError.instance(
            compiled.sql,
            args,
            exc,
            conn.dialect.loaded_dbapi.Error,
            hide_parameters=True,
            connection_invalidated=disconnect,
            dialect=conn.dialect,
        ) from exc
    finally:
        cursor.close()
    row, results = compiled.row, compiled.results
    if not any(results):
        return [row(*r) for r in rows], count
    return [row(*(v if p is None else p(v) for p, v in zip(results, r, strict=True))) for r in rows], count


def _column_type(column: Any) -> Any:
    """A column's type; a foreign key column's is its target's (SQLAlchemy gives it that type only once
    the referenced table is known, so an early read would be untyped for good)."""
    if column.type._isnull and column.foreign_keys:  # noqa: SLF001
        return next(iter(column.foreign_keys)).column.type
    return column.type


class PreparedRows:
    """An INSERT of several rows as one multi-VALUES statement on the driver's cursor: a Prepared per
    row count (compiled once per count and dialect), row i's values bound as `<column>_<i>`.

        SALES = PreparedRows(lambda values: insert(Sale.__table__).values(values), Sale.__table__,
                             ("person_id", "code", ...))
        SALES.run(uow, rows)       # -> rows inserted;   SALES.execute(uow, rows) -> RETURNING rows

    `build(values)` gets the rows of bind parameters (dicts by column) and returns the statement, so a
    dialect's own INSERT (ON CONFLICT ...) or a RETURNING clause can be added; build one PreparedRows
    per dialect for those. Each parameter takes its column's type. More rows than `max_rows` go in
    several statements (so a large order never builds an unbounded statement).
    """

    def __init__(
        self,
        build: Callable[[list[dict[str, Any]]], Executable],
        table: Any,
        columns: Sequence[str],
        *,
        max_rows: int = 16,
    ) -> None:
        self.build = build
        self.table = table
        self.columns = tuple(columns)
        self.max_rows = max_rows
        self._by_count: dict[int, Prepared] = {}

    def _prepared(self, n: int) -> Prepared:
        prepared = self._by_count.get(n)
        if prepared is None:
            types = {c: _column_type(self.table.c[c]) for c in self.columns}
            values = [{c: bindparam(f"{c}_{i}", type_=types[c]) for c in self.columns} for i in range(n)]
            names = [f"{c}_{i}" for i in range(n) for c in self.columns]
            prepared = self._by_count[n] = Prepared(self.build(values), names)
        return prepared

    def _chunks(self, rows: Sequence[Mapping[str, Any]]) -> Iterator[tuple[Prepared, dict[str, Any]]]:
        for start in range(0, len(rows), self.max_rows):
            chunk = rows[start : start + self.max_rows]
            values = {f"{c}_{i}": row[c] for i, row in enumerate(chunk) for c in self.columns}
            yield self._prepared(len(chunk)), values

    def execute(self, uow: UnitOfWork, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Insert the rows; the RETURNING rows of every statement ([] without RETURNING). The chunks'
        rows come in chunk order; within one statement PostgreSQL does not promise the rows' order."""
        return [r for prepared, values in self._chunks(rows) for r in prepared.execute(uow, values)]

    def run(self, uow: UnitOfWork, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert the rows; how many the database inserted (fewer when ON CONFLICT skipped some)."""
        return sum(prepared.run(uow, values) for prepared, values in self._chunks(rows))
