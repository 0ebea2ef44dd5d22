"""Supervision fixtures: the driver, a person and two institutions in two prefectures."""

from __future__ import annotations

import pytest

from .support import Sup


@pytest.fixture
def sup(app, yb) -> Sup:  # type: ignore[no-untyped-def]
    return Sup(app, yb)


@pytest.fixture
def person(yb):  # type: ignore[no-untyped-def]
    return yb.person(balance=100_000)


@pytest.fixture
def shops(yb):  # type: ignore[no-untyped-def]
    """Three pharmacies: two in prefecture 5329 (Dali), one in 5301 (Kunming)."""
    return [
        yb.institution(region="532901", name="大理药房一"),
        yb.institution(region="532922", name="大理药房二"),
        yb.institution(region="530102", name="昆明药房"),
    ]
