"""The family domain's clock: ages and deadlines are computed from it, so tests can move it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from yibao.db import utcnow

# Birth dates in ID numbers are calendar dates in China: a birthday starts at midnight Beijing time.
CST = timezone(timedelta(hours=8), "CST")


def now() -> datetime:
    """The current instant (UTC). Tests monkeypatch this function."""
    return utcnow()


def today(at: datetime | None = None) -> date:
    """The calendar date in China at `at` (default: now())."""
    return (at or now()).astimezone(CST).date()


def age_on(birth: date, on: date) -> int:
    """Completed years of age on a date."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def birthday(birth: date, years: int) -> date:
    """The date on which a person born on `birth` turns `years` (29 February → 1 March)."""
    try:
        return birth.replace(year=birth.year + years)
    except ValueError:
        return date(birth.year + years, 3, 1)


def start_of_day(day: date) -> datetime:
    """Midnight Beijing time of a calendar date, as a UTC instant."""
    return datetime(day.year, day.month, day.day, tzinfo=CST).astimezone(UTC)
