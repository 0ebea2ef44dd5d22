"""Monthly range partitions of the tables that grow with every scan or request, and their retention.

On PostgreSQL each such table is `PARTITION BY RANGE (<column>)` with one partition per UTC month
(`<table>_pYYYYMM`) and a default partition (`<table>_default`) that takes any row no month partition
covers, so an insert never fails for want of a partition. SQLite keeps the same tables unpartitioned.
Domains declare their tables (`Retained`) in their `register(app, api)`; `yibao maintenance
ensure-partitions` creates this and the next months' partitions ahead of time, and `yibao maintenance
prune --older-than` drops whole partitions (PostgreSQL) or deletes rows (SQLite, and the default
partition) — never rows a table still needs: each table has a minimum age its rows keep whatever
`--older-than` says, and a `still_needed` predicate that keeps a partition whole while any of its rows
matches it. This module is infrastructure: the dialect branches live here, not in rule code.
"""

# ruff: noqa: S608  identifiers in the SQL below come from Retained/Shape declared in code, never input
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import Connection, Engine, bindparam, text

from .db import UTCDateTime

EXTENSION = "yibao.partitions"
DEFAULT_AHEAD = 1  # months after the current one created ahead of time
_DURATION = re.compile(r"(?P<n>[0-9]{1,6})(?P<unit>[smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Retained:
    """A table that grows with traffic: how it is partitioned and what of it must be kept.

    partition_column: the range key on PostgreSQL (a timestamptz; every unique constraint includes it).
    age_column: what `--older-than` measures, row by row (SQLite, and the default partition).
    minimum: rows younger than this (by age_column) are kept whatever `--older-than` says; a
        function of the app config, so a setting can decide it.
    still_needed: an SQL predicate (may use :now) of rows that must survive; a partition holding any
        such row is kept whole, and row deletes skip them.
    """

    table: str
    partition_column: str
    age_column: str
    minimum: Callable[[Mapping[str, Any]], timedelta]
    still_needed: str | None = None


def register(app: Flask, *tables: Retained) -> None:
    """Declare a domain's growing tables (called from the domain's register)."""
    app.extensions.setdefault(EXTENSION, {}).update({t.table: t for t in tables})


def registered(app: Flask) -> list[Retained]:
    return list(app.extensions.get(EXTENSION, {}).values())


def parse_duration(value: str) -> timedelta:
    """`90d`, `36h`, `2w`, `30m` (minutes), `45s` -> timedelta; ValueError otherwise."""
    m = _DURATION.fullmatch(value.strip())
    if m is None:
        raise ValueError(f"{value!r} is not a duration like 90d, 36h, 2w, 30m or 45s")
    return timedelta(**{_UNITS[m["unit"]]: int(m["n"])})


def month_start(at: datetime) -> datetime:
    """The first instant (UTC) of the UTC month of `at`."""
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def add_months(month: datetime, n: int) -> datetime:
    index = month.year * 12 + month.month - 1 + n
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(table: str, month: datetime) -> str:
    return f"{table}_p{month.year:04d}{month.month:02d}"


def default_name(table: str) -> str:
    return f"{table}_default"


def _bounds(month: datetime) -> str:
    return f"FROM ('{month.isoformat()}') TO ('{add_months(month, 1).isoformat()}')"


def is_partitioned(conn: Connection, table: str) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    return bool(
        conn.scalar(
            text("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(:t)"), {"t": table}
        )
    )


def month_partitions(conn: Connection, table: str) -> list[tuple[str, datetime]]:
    """(partition name, month) of every month partition of `table`, oldest first."""
    names = conn.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": table},
    ).all()
    pattern = re.compile(re.escape(table) + r"_p(?P<y>[0-9]{4})(?P<m>[0-9]{2})")
    found = [(n, m) for n in names if (m := pattern.fullmatch(n))]
    return sorted((n, datetime(int(m["y"]), int(m["m"]), 1, tzinfo=UTC)) for n, m in found)


def create_month(conn: Connection, table: str, column: str, month: datetime) -> bool:
    """Create the partition of `month` unless it exists; False when it did.

    Rows of that month already in the default partition (written before the partition existed) are
    moved into it in the same transaction: PostgreSQL refuses to attach a range the default holds.
    """
    month = month_start(month)
    name = partition_name(table, month)
    if conn.scalar(text("SELECT to_regclass(:n)"), {"n": name}) is not None:
        return False
    lo, hi = month, add_months(month, 1)
    default = default_name(table)
    in_default = conn.scalar(
        text(f'SELECT 1 FROM "{default}" WHERE "{column}" >= :lo AND "{column}" < :hi LIMIT 1'),
        {"lo": lo, "hi": hi},
    )
    if not in_default:
        conn.execute(text(f'CREATE TABLE "{name}" PARTITION OF "{table}" FOR VALUES {_bounds(month)}'))
        return True
    conn.execute(text(f'CREATE TABLE "{name}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'))
    conn.execute(
        text(
            f'WITH moved AS (DELETE FROM "{default}" WHERE "{column}" >= :lo AND "{column}" < :hi'
            f' RETURNING *) INSERT INTO "{name}" SELECT * FROM moved'
        ),
        {"lo": lo, "hi": hi},
    )
    conn.execute(text(f'ALTER TABLE "{table}" ATTACH PARTITION "{name}" FOR VALUES {_bounds(month)}'))
    return True


def ensure(conn: Connection, spec: Retained, now: datetime, ahead: int = DEFAULT_AHEAD) -> list[str]:
    """Create the partitions of the current month and `ahead` months after it; the names created."""
    if not is_partitioned(conn, spec.table):
        return []
    first = month_start(now)
    months = (add_months(first, i) for i in range(ahead + 1))
    return [
        partition_name(spec.table, m)
        for m in months
        if create_month(conn, spec.table, spec.partition_column, m)
    ]


def ensure_all(app: Flask, engine: Engine, now: datetime, ahead: int = DEFAULT_AHEAD) -> dict[str, list[str]]:
    """ensure() for every registered table, each in its own short transaction."""
    out = {}
    for spec in registered(app):
        with engine.begin() as conn:
            out[spec.table] = ensure(conn, spec, now, ahead)
    return out


def cutoff_of(spec: Retained, config: Mapping[str, Any], older_than: timedelta, now: datetime) -> datetime:
    """What prune may remove: rows older than `older_than`, never younger than the table's minimum."""
    return now - max(older_than, spec.minimum(config))


def prune(conn: Connection, spec: Retained, cutoff: datetime, now: datetime) -> dict[str, Any]:
    """Remove what is older than `cutoff` and not still needed; what was dropped, kept and deleted.

    PostgreSQL: every month partition that ends at or before the cutoff is dropped whole, unless one
    of its rows is still needed (then it is kept, with the reason); old rows of the default partition
    are deleted. SQLite: old rows are deleted.
    """
    out: dict[str, Any] = {"cutoff": cutoff.isoformat(), "dropped": [], "kept": [], "deleted_rows": 0}
    needed = f" AND NOT ({spec.still_needed})" if spec.still_needed else ""
    target = spec.table
    if is_partitioned(conn, spec.table):
        target = default_name(spec.table)
        for name, month in month_partitions(conn, spec.table):
            if add_months(month, 1) > cutoff:
                continue
            if spec.still_needed and conn.scalar(
                text(f'SELECT 1 FROM "{name}" WHERE {spec.still_needed} LIMIT 1'), {"now": now}
            ):
                out["kept"].append({"partition": name, "reason": "rows still needed"})
                continue
            conn.execute(text(f'DROP TABLE "{name}"'))
            out["dropped"].append(name)
    delete = text(f'DELETE FROM "{target}" WHERE "{spec.age_column}" < :cutoff{needed}')
    res = conn.execute(_timed(delete), {"cutoff": cutoff, "now": now})
    out["deleted_rows"] = res.rowcount or 0
    return out


def _timed(stmt: Any) -> Any:
    """Bind :cutoff and :now as UTCDateTime (SQLite stores naive UTC text, PostgreSQL timestamptz)."""
    names = [n for n in ("cutoff", "now") if f":{n}" in stmt.text]
    return stmt.bindparams(*(bindparam(n, type_=UTCDateTime) for n in names))


# --- for migrations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """The keys and indexes of a table to rebuild (migrations): names as the models' convention."""

    primary_key: Sequence[str]
    uniques: Mapping[str, Sequence[str]] = field(default_factory=dict)  # name -> columns
    indexes: Mapping[str, Sequence[str]] = field(default_factory=dict)  # name -> columns
    foreign_keys: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # name -> (column, table)


def rebuild(
    conn: Connection,
    table: str,
    shape: Shape,
    *,
    partition_column: str | None,
    now: datetime,
    ahead: int = DEFAULT_AHEAD,
    months_back: int = 36,
) -> None:
    """PostgreSQL: rebuild `table` partitioned by month on `partition_column` (or, None, as a plain
    table: the downgrade), keeping every row, its id sequence, checks, keys and indexes.

    Month partitions are created from the oldest row's month (at most `months_back` before now) to
    `ahead` months after now, plus the default partition (older rows land there).
    """
    new = f"{table}__rebuilt"
    partition = f" PARTITION BY RANGE ({partition_column})" if partition_column else ""
    conn.execute(
        text(f'CREATE TABLE "{new}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS){partition}')
    )
    if partition_column:
        conn.execute(text(f'CREATE TABLE "{default_name(table)}__new" PARTITION OF "{new}" DEFAULT'))
        oldest = conn.scalar(text(f'SELECT min("{partition_column}") FROM "{table}"'))
        first = month_start(max(min(oldest or now, now), add_months(month_start(now), -months_back)))
        month = first
        while month <= add_months(month_start(now), ahead):
            conn.execute(
                text(
                    f'CREATE TABLE "{partition_name(table, month)}" PARTITION OF "{new}"'
                    f" FOR VALUES {_bounds(month)}"
                )
            )
            month = add_months(month, 1)
    conn.execute(text(f'INSERT INTO "{new}" SELECT * FROM "{table}"'))
    conn.execute(text(f'ALTER SEQUENCE "{table}_id_seq" OWNED BY "{new}".id'))
    conn.execute(text(f'DROP TABLE "{table}"'))  # a plain table's month partitions go with it
    conn.execute(text(f'ALTER TABLE "{new}" RENAME TO "{table}"'))
    if partition_column:
        conn.execute(text(f'ALTER TABLE "{default_name(table)}__new" RENAME TO "{default_name(table)}"'))
    cols = ", ".join(shape.primary_key)
    conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "pk_{table}" PRIMARY KEY ({cols})'))
    for name, columns in shape.uniques.items():
        conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" UNIQUE ({", ".join(columns)})'))
    for name, columns in shape.indexes.items():
        conn.execute(text(f'CREATE INDEX "{name}" ON "{table}" ({", ".join(columns)})'))
    for name, (column, referred) in shape.foreign_keys.items():
        fk = f"FOREIGN KEY ({column}) REFERENCES {referred} (id)"
        conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {fk}'))
