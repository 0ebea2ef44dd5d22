"""The family domain's clock: ages and deadlines are computed from it, so tests can move it."""

from __future__ import annotations

from datetime import date, datetime

from yibao.china_time import CST, china_date, start_of_day
from yibao.db import utcnow

# Re-exported: the domain's code and tests take every date function from this one module.
__all__ = ["CST", "age_on", "birthday", "now", "start_of_day", "today"]


def now() -> datetime:
    """The current instant (UTC). Tests monkeypatch this function."""
    return utcnow()


def today(at: datetime | None = None) -> date:
    """The calendar date in China at `at` (default: now()): birthdays start at midnight Beijing time."""
    return china_date(at or now())


def age_on(birth: date, on: date) -> int:
    """Completed years of age on a date."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def birthday(birth: date, years: int) -> date:
    """The date on which a person born on `birth` turns `years` (29 February → 1 March)."""
    try:
        return birth.replace(year=birth.year + years)
    except ValueError:
        return date(birth.year + years, 3, 1)
