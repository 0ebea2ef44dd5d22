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


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url)
    with engine.connect() as conn:
        context.configure(
            connection=conn,
            target_metadata=target_metadata,
            render_as_batch=conn.dialect.name == "sqlite",
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        conn.commit()
    engine.dispose()


run_migrations_online()
