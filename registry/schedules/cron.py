"""Cron expressions evaluated in a time zone (cronsim: DST-aware, like healthchecks.io).

Times go in and out in UTC; the expression is read in the schedule's zone. On a spring-forward
day a time that does not exist runs at the first valid time after it; on a fall-back day a
time that happens twice runs once (the first time).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

# Far enough for "0 3 29 2 *" (leap days) and then some; a cron that never fires fails here.
_HORIZON = dt.timedelta(days=366 * 9)
MAX_MISSED = 10_000  # missed due times counted at most (a minutely cron after a week down)


class CronError(ValueError):
    pass


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(
            f"unknown time zone {name!r}; use an IANA name such as 'UTC' or 'Europe/Berlin'"
        ) from exc


def _iterate(expr: str, tz: str, after: dt.datetime) -> Iterator[dt.datetime]:
    if after.tzinfo is None:
        raise ValueError("`after` must be timezone-aware")
    local = after.astimezone(zone(tz))
    try:
        sim = CronSim(expr, local)
    except CronSimError as exc:
        raise CronError(f"invalid cron expression {expr!r}: {exc}") from exc
    except Exception as exc:  # cronsim raises plain errors on some malformed fields
        raise CronError(f"invalid cron expression {expr!r}: {exc}") from exc
    for value in sim:
        yield value.astimezone(dt.UTC)


def next_after(expr: str, tz: str, after: dt.datetime) -> dt.datetime:
    """The first run strictly after `after`, in UTC."""
    for value in _iterate(expr, tz, after):
        if value > after:
            if value - after > _HORIZON:
                break
            return value
    raise CronError(f"cron expression {expr!r} never fires")


@lru_cache(maxsize=4096)
def advance(expr: str, tz: str, due: dt.datetime, now: dt.datetime) -> tuple[int, dt.datetime]:
    """For a run due at `due` firing at `now`: how many later due times (at most MAX_MISSED)
    have also passed (they collapse into this run), and the first due time after `now`.
    Cached: a fleet on one cron shares the answer (the arguments are all immutable)."""
    missed = 0
    for value in _iterate(expr, tz, due):
        if value <= due:
            continue
        if value > now:
            if value - now > _HORIZON:
                break
            return missed, value
        missed += 1
        if missed >= MAX_MISSED:
            return missed, next_after(expr, tz, now)
    raise CronError(f"cron expression {expr!r} never fires")


def upcoming(expr: str, tz: str, after: dt.datetime, count: int) -> list[dt.datetime]:
    out: list[dt.datetime] = []
    cursor = after
    for _ in range(count):
        cursor = next_after(expr, tz, cursor)
        out.append(cursor)
    return out


def validate(expr: str, tz: str, now: dt.datetime) -> dt.datetime:
    """Check the expression and the zone; the next run after `now`."""
    if not expr.startswith("@") and len(expr.split()) != 5:
        raise CronError(
            f"cron expression {expr!r} needs 5 fields (minute hour day-of-month month "
            "day-of-week), e.g. '0 3 1 1,4,7,10 *' for 03:00 on the first day of each quarter"
        )
    return next_after(expr, tz, now)
