"""Shell test fixtures: the app gets a tiny test-only blueprint (tests/shell/support.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from .support import build_app, snapshot


@pytest.fixture
def app(app_config: dict) -> Iterator[Flask]:
    app = build_app(app_config)
    yield app
    app.extensions["yibao.db"]["engine"].dispose()


@pytest.fixture
def make_app(app_config: dict) -> Iterator[Callable[..., Flask]]:
    """Build another app on the same database and Redis, with config overrides."""
    made: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        cfg = {**app_config, **overrides}
        a = build_app(cfg)
        made.append(a)
        return a

    yield factory
    for a in made:
        a.extensions["yibao.db"]["engine"].dispose()


@pytest.fixture
def rows(app: Flask) -> Callable[[], dict[str, int]]:
    """A callable returning the row count of every shell table (to prove nothing was written)."""
    return lambda: snapshot(app)
