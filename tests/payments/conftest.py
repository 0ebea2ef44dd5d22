"""Payments fixtures: the order driver and two institutions (helpers are in support.py)."""

from __future__ import annotations

import pytest

from tests.support import Institution, Yb

from .support import Pay


@pytest.fixture
def app_config(app_config: dict) -> dict:
    # Short lease so the crash/takeover tests do not wait 30 s.
    return {**app_config, "PAYMENTS_IDEMPOTENCY_LOCK_SECONDS": 2}


@pytest.fixture
def pay(yb: Yb) -> Pay:
    return Pay(yb)


@pytest.fixture
def shop(yb: Yb) -> Institution:
    return yb.institution(kind="online_pharmacy", name="线上药房")


@pytest.fixture
def counter(yb: Yb) -> Institution:
    return yb.institution(kind="pharmacy", name="定点药房")
