"""China Standard Time: business days, statements and birthdays are calendar dates in Beijing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

# UTC+8 all year: China has observed no daylight saving time since 1991, so a fixed offset is exact
# for every date this service handles (and needs no tz database on the host).
CST = timezone(timedelta(hours=8), "CST")


def china_date(at: datetime) -> date:
    """The calendar date in Beijing at an aware instant."""
    return at.astimezone(CST).date()


def start_of_day(day: date) -> datetime:
    """Midnight Beijing time of a calendar date, as a UTC instant."""
    return datetime(day.year, day.month, day.day, tzinfo=CST).astimezone(UTC)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a Beijing calendar day, as UTC instants."""
    start = start_of_day(day)
    return start, start + timedelta(days=1)
