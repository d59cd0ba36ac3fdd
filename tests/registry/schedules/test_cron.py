"""Cron expressions in a time zone: pure unit tests of registry/schedules/cron.py."""

from __future__ import annotations

import datetime as dt

import pytest

from registry.schedules import cron
from registry.schedules.cron import CronError


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


def test_quarterly_in_berlin_crosses_the_year_and_a_dst_change() -> None:
    runs = cron.upcoming("0 3 1 1,4,7,10 *", "Europe/Berlin", utc(2026, 11, 22), 3)
    assert runs == [
        utc(2027, 1, 1, 2),  # 03:00 CET (UTC+1)
        utc(2027, 4, 1, 1),  # 03:00 CEST (UTC+2)
        utc(2027, 7, 1, 1),
    ]
    assert all(r.tzinfo == dt.UTC for r in runs)


def test_validate_returns_the_next_run() -> None:
    first = cron.validate("0 3 1 1,4,7,10 *", "Europe/Berlin", utc(2026, 11, 22))
    assert first == utc(2027, 1, 1, 2)


def test_spring_forward_runs_a_missing_time_once_at_the_first_valid_time() -> None:
    # 2027-03-14 in New York: 02:00 EST jumps to 03:00 EDT, so 02:30 does not exist.
    runs = cron.upcoming("30 2 * * *", "America/New_York", utc(2027, 3, 12, 12), 4)
    assert runs == [
        utc(2027, 3, 13, 7, 30),  # 02:30 EST (UTC-5)
        utc(2027, 3, 14, 7, 0),  # 03:00 EDT: the first valid time after the gap, once
        utc(2027, 3, 15, 6, 30),  # 02:30 EDT (UTC-4)
        utc(2027, 3, 16, 6, 30),
    ]


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (utc(2027, 3, 14, 6, 0), utc(2027, 3, 14, 7, 0)),  # 01:00 EST, inside the day
        (utc(2027, 3, 14, 6, 59), utc(2027, 3, 14, 7, 0)),
        (utc(2027, 3, 14, 7, 0), utc(2027, 3, 15, 6, 30)),  # strictly after
    ],
)
def test_spring_forward_next_after(after: dt.datetime, expected: dt.datetime) -> None:
    assert cron.next_after("30 2 * * *", "America/New_York", after) == expected


def test_fall_back_runs_a_repeated_time_once() -> None:
    # 2027-11-07 in New York: 02:00 EDT falls back to 01:00 EST, so 01:30 happens twice.
    runs = cron.upcoming("30 1 * * *", "America/New_York", utc(2027, 11, 5, 12), 4)
    assert runs == [
        utc(2027, 11, 6, 5, 30),  # 01:30 EDT (UTC-4)
        utc(2027, 11, 7, 5, 30),  # the first 01:30 (EDT) only
        utc(2027, 11, 8, 6, 30),  # 01:30 EST (UTC-5)
        utc(2027, 11, 9, 6, 30),
    ]


@pytest.mark.parametrize(
    "after",
    [utc(2027, 11, 7, 5, 31), utc(2027, 11, 7, 6, 30), utc(2027, 11, 7, 6, 45)],
)
def test_fall_back_does_not_run_again_in_the_second_hour(after: dt.datetime) -> None:
    assert cron.next_after("30 1 * * *", "America/New_York", after) == utc(2027, 11, 8, 6, 30)


def test_next_after_is_strictly_after() -> None:
    assert cron.next_after("0 * * * *", "UTC", utc(2027, 1, 1, 5)) == utc(2027, 1, 1, 6)


def test_leap_day_cron_fires_within_the_horizon() -> None:
    assert cron.next_after("0 3 29 2 *", "UTC", utc(2027, 3, 1)) == utc(2028, 2, 29, 3)


def test_wrong_field_count_names_the_five_fields() -> None:
    with pytest.raises(CronError) as err:
        cron.validate("0 3 * *", "UTC", utc(2027, 1, 1))
    message = str(err.value)
    assert "'0 3 * *'" in message and "5 fields" in message
    assert "minute hour day-of-month month day-of-week" in message


@pytest.mark.parametrize(
    ("expr", "needle"),
    [
        ("61 * * * *", "minute"),
        ("0 0 30 2 *", "day-of-month"),
        ("0 25 * * *", "hour"),
        ("* * * 13 *", "month"),
        ("nonsense here and there too", ""),
    ],
)
def test_invalid_expressions_name_the_value(expr: str, needle: str) -> None:
    with pytest.raises(CronError) as err:
        cron.validate(expr, "UTC", utc(2027, 1, 1))
    assert repr(expr) in str(err.value)
    assert needle in str(err.value).lower()


def test_unknown_zone_names_the_zone() -> None:
    with pytest.raises(CronError) as err:
        cron.validate("0 0 * * *", "Mars/Base", utc(2027, 1, 1))
    assert "'Mars/Base'" in str(err.value) and "IANA" in str(err.value)
    with pytest.raises(CronError):
        cron.next_after("0 0 * * *", "Mars/Base", utc(2027, 1, 1))


def test_cron_error_is_a_value_error() -> None:
    assert issubclass(CronError, ValueError)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cron.next_after("0 * * * *", "UTC", dt.datetime(2027, 1, 1))


@pytest.mark.parametrize(
    ("expr", "tz"),
    [
        ("*/7 * * * *", "UTC"),
        ("30 2 * * *", "America/New_York"),
        ("30 1 * * *", "America/New_York"),
        ("0 3 1 1,4,7,10 *", "Europe/Berlin"),
        ("45 23 * * 5", "Asia/Kolkata"),
    ],
)
def test_upcoming_is_strictly_increasing_utc(expr: str, tz: str) -> None:
    start = utc(2027, 3, 10)
    runs = cron.upcoming(expr, tz, start, 40)
    assert len(runs) == 40
    assert all(r.utcoffset() == dt.timedelta(0) for r in runs)
    assert all(a < b for a, b in zip([start, *runs], runs, strict=False))


def test_hourly_across_fall_back_runs_every_real_hour_once() -> None:
    """Only a fixed hour is collapsed: an hourly cron runs in both 01:xx hours (elapsed time)."""
    runs = cron.upcoming("30 * * * *", "America/New_York", utc(2027, 11, 7, 3), 6)
    assert runs == [utc(2027, 11, 7, h, 30) for h in range(3, 9)]
