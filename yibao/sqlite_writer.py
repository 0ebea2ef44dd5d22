"""Short write transactions on SQLite, one transaction on PostgreSQL: for hot paths that read, then write.

Why SQLite writers are queued: SQLite has one writer at a time (the engine starts every write
transaction with BEGIN IMMEDIATE, yibao/db.py). A blocked writer waits in SQLite's busy handler,
which sleeps with growing back-off (up to 100 ms), so under load most of a request's latency is
sleeping while the lock is already free. A process waiting on an flock wakes the moment the holder
releases it: `writer_turn` queues the writers of one database file on such a lock before their
BEGIN IMMEDIATE. SQLite's own lock stays the guarantee; the flock only orders the waiters.

`ReadThenWrite` keeps the write lock short: on SQLite the reads run in a read-only transaction of
their own (no write lock) and the writes in a second, short one, taken in `writer_turn`. On
PostgreSQL (many writers, row locks) both phases share one transaction, which saves a connection
checkout and a BEGIN/ROLLBACK round trip, and `writer_turn` does nothing. Use it only when the
reads need not be atomic with the writes (the writes must re-check what they rely on, e.g. with
a unique constraint).

Usable by any domain:

    with ReadThenWrite(uow_factory) as rw:
        with rw.reading() as ruow:
            decision = decide(ruow)
        with rw.writing() as wuow:
            write(wuow, decision)
            wuow.commit()
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from .db import UnitOfWork

UowFactory = Callable[[bool], AbstractContextManager[UnitOfWork]]

MAX_OPEN_TURN_FILES = 8  # one database per app in production; test suites create many
_turn_files: dict[str, int] = {}


def _database_file(uow: UnitOfWork) -> str | None:
    bind = uow.session.get_bind()
    path = bind.url.database if bind.dialect.name == "sqlite" else None
    return None if not path or path == ":memory:" else path


_thread_turn = threading.RLock()


@contextmanager
def writer_turn(uow: UnitOfWork) -> Iterator[None]:
    """On a SQLite file, wait for this process's turn (flock on `<db>.writers`) before writing.

    Enter it before the first write statement of `uow` (that statement's BEGIN IMMEDIATE takes
    SQLite's lock) and leave it after the commit. A no-op on PostgreSQL and in-memory SQLite.
    """
    path = _database_file(uow)
    if path is None:
        yield
        return
    fd = _turn_files.get(path)
    if fd is None:
        if len(_turn_files) >= MAX_OPEN_TURN_FILES:
            os.close(_turn_files.pop(next(iter(_turn_files))))
        fd = _turn_files[path] = os.open(path + ".writers", os.O_RDWR | os.O_CREAT, 0o600)
    # An flock belongs to the open file, shared by this process's threads (gthread workers): the
    # threads take turns on a lock of their own first.
    with _thread_turn:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


class ReadThenWrite:
    """A read phase and a write phase: two transactions on SQLite, one on PostgreSQL (module doc)."""

    def __init__(self, uow_factory: UowFactory) -> None:
        self._factory = uow_factory
        self._cm: AbstractContextManager[UnitOfWork] | None = None
        self.uow: UnitOfWork

    def __enter__(self) -> ReadThenWrite:
        self._cm = self._factory(False)
        self.uow = self._cm.__enter__()  # the session begins lazily: no lock is taken here
        self._separate = self.uow.dialect == "sqlite"
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._cm is not None
        self._cm.__exit__(*exc)

    @contextmanager
    def reading(self) -> Iterator[UnitOfWork]:
        """The unit of work for the reads: read-only and separate on SQLite, the shared one elsewhere."""
        if self._separate:
            with self._factory(True) as ruow:
                yield ruow
        else:
            yield self.uow

    @contextmanager
    def writing(self) -> Iterator[UnitOfWork]:
        """The unit of work for the writes, in this process's writer turn; the caller commits."""
        with writer_turn(self.uow):
            yield self.uow
