"""Ages and birthdays: the arithmetic that decides who consents and when a ward comes of age."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from family_accounts import clock

births = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))


@given(births, st.integers(min_value=0, max_value=120))
def test_age_turns_on_the_birthday(born, years):
    day = clock.birthday(born, years)
    assert clock.age_on(born, day) == years
    assert clock.age_on(born, day - timedelta(days=1)) == years - 1


@given(births, st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31)))
def test_age_is_monotonic_and_never_exceeds_elapsed_years(born, on):
    age = clock.age_on(born, on)
    assert clock.age_on(born, on + timedelta(days=1)) >= age
    if on >= born:
        assert 0 <= age <= (on - born).days // 365


def test_leap_day_birthday_counts_from_the_first_of_march():
    born = date(2012, 2, 29)
    assert clock.birthday(born, 17) == date(2029, 3, 1)
    assert clock.age_on(born, date(2029, 2, 28)) == 16
    assert clock.age_on(born, date(2029, 3, 1)) == 17
    assert clock.birthday(born, 16) == date(2028, 2, 29)


def test_birthdays_start_at_midnight_beijing_time():
    assert clock.start_of_day(date(2027, 6, 1)) == datetime(2027, 5, 31, 16, 0, tzinfo=UTC)
    assert clock.today(datetime(2027, 5, 31, 15, 59, tzinfo=UTC)) == date(2027, 5, 31)
    assert clock.today(datetime(2027, 5, 31, 16, 0, tzinfo=UTC)) == date(2027, 6, 1)
