"""Alembic configuration built in code: the shell's migrations plus each domain's own branch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config

HERE = Path(__file__).resolve().parent


def version_locations() -> list[str]:
    from . import DOMAINS

    locations = [str(HERE / "migrations" / "versions")]
    for name in DOMAINS:
        spec = importlib.util.find_spec(name)
        if spec and spec.submodule_search_locations:
            path = Path(next(iter(spec.submodule_search_locations))) / "migrations"
            if path.is_dir():
                locations.append(str(path))
    return locations


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    cfg.set_main_option("version_locations", " ".join(version_locations()))
    cfg.set_main_option("path_separator", "space")
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str, target: str = "heads") -> None:
    """Apply every migration of the shell and the domains."""
    command.upgrade(alembic_config(database_url), target)


def downgrade(database_url: str, target: str = "base") -> None:
    command.downgrade(alembic_config(database_url), target)
