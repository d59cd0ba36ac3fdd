"""The spread window: a fleet-wide cron (every tenant's quarterly retrain at 03:00 on the 1st)
is not a thundering herd when each schedule fires at its own place after the due time.

The due time stays the cron time (`next_run_at`); the fire time is the due time plus an offset
in [0, spread): blake2b of the adapter id and the due time (UTC, ISO 8601), modulo the spread.
Deterministic (the same adapter and due time always give the same offset, so `next_fire_at`
can be shown ahead of time and recomputed by anyone), roughly uniform across adapters, and,
because the due time is in the hash, an adapter is not always the last one of the fleet.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from itertools import pairwise

from registry.schedules import cron

MAX_SPREAD_SECONDS = 90 * 24 * 3600
GAP_SAMPLE = 4  # due times looked at to find the shortest time between two runs


def offset_seconds(adapter_id: uuid.UUID, due: dt.datetime, spread: int) -> int:
    """Where in [0, spread) after `due` this adapter's run goes (0 without a spread)."""
    if spread <= 0:
        return 0
    key = f"{adapter_id}|{due.astimezone(dt.UTC).isoformat()}".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") % spread


def fire_at(adapter_id: uuid.UUID, due: dt.datetime, spread: int) -> dt.datetime:
    return due + dt.timedelta(seconds=offset_seconds(adapter_id, due, spread))


def check(expr: str, tz: str, first: dt.datetime, spread: int) -> None:
    """A spread must be shorter than the time between two runs: else one run's fire time could
    pass the next due time, and runs would be lost instead of spread."""
    if spread <= 0:
        return
    runs = [first, *cron.upcoming(expr, tz, first, GAP_SAMPLE - 1)]
    gap = min(int((b - a).total_seconds()) for a, b in pairwise(runs))
    if spread >= gap:
        raise cron.CronError(
            f"spread_seconds {spread} is not shorter than the time between two runs of "
            f"{expr!r} ({gap} s at the shortest): use a spread below {gap} s or a sparser cron"
        )
