"""Alembic environment: the URL comes from the caller (yibao.migrate), never from an ini file."""

from __future__ import annotations

from alembic import context

from yibao.db import Base, make_engine

config = context.config
url = config.attributes.get("database_url")


def _import_models() -> None:
    import contextlib
    import importlib

    from yibao import DOMAINS
    from yibao.auth import models as _auth  # noqa: F401
    from yibao.registry import models as _registry  # noqa: F401

    for name in DOMAINS:
        with contextlib.suppress(ModuleNotFoundError):
            importlib.import_module(f"{name}.models")


_import_models()
target_metadata = Base.metadata


def _check_foreign_keys(*, ctx, step, **_: object) -> None:  # type: ignore[no-untyped-def]
    """Inside the migration's transaction: a reference it left dangling rolls the migration back."""
    broken = ctx.connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"migration {step.up_revision_id} left broken foreign keys: {broken[:5]}")


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url)
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # SQLite's documented way to rebuild a table that other tables reference (batch mode:
            # create, copy, DROP, rename): foreign keys off, set outside any transaction, and
            # PRAGMA foreign_key_check before each migration commits (_check_foreign_keys).
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")
        context.configure(
            connection=conn,
            target_metadata=target_metadata,
            render_as_batch=sqlite,
            transaction_per_migration=True,
            on_version_apply=[_check_foreign_keys] if sqlite else [],
        )
        with context.begin_transaction():
            context.run_migrations()
        conn.commit()
    engine.dispose()


run_migrations_online()
