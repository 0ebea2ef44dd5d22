"""Family fixtures: the driver of the family endpoints and a movable clock (helpers are in support.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from family_accounts import clock
from tests.support import Yb

from .support import Family


@pytest.fixture
def fam(yb: Yb, app: Any) -> Family:
    return Family(yb, app)


@pytest.fixture
def move_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[timedelta], datetime]:
    """Move the family clock forward by a delta from the real now; returns the new now."""

    def move(delta: timedelta) -> datetime:
        target = clock.utcnow() + delta
        monkeypatch.setattr(clock, "now", lambda: target)
        return target

    return move
