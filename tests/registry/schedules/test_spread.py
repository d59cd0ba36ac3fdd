"""The spread window: each schedule fires at its own place after the due time."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter

import pytest

from registry.schedules import cron, spread
from tests.registry.schedules.conftest import ScheduleWorld, when

DUE = dt.datetime(2027, 4, 1, 3, 0, tzinfo=dt.UTC)
SIX_HOURS = 6 * 3600


def test_offset_is_deterministic_and_within_the_window() -> None:
    adapter = uuid.UUID("5b0c3f4e-8d51-4a8e-9d51-36a4a3f0e6a1")
    first = spread.offset_seconds(adapter, DUE, SIX_HOURS)
    assert 0 <= first < SIX_HOURS
    assert spread.offset_seconds(adapter, DUE, SIX_HOURS) == first
    # the same instant written in another zone is the same due time
    berlin = DUE.astimezone(cron.zone("Europe/Berlin"))
    assert spread.offset_seconds(adapter, berlin, SIX_HOURS) == first
    assert spread.fire_at(adapter, DUE, SIX_HOURS) == DUE + dt.timedelta(seconds=first)
    assert spread.offset_seconds(adapter, DUE, 0) == 0 and spread.fire_at(adapter, DUE, 0) == DUE
    assert spread.offset_seconds(adapter, DUE, 1) == 0


def test_offsets_are_roughly_uniform_and_move_with_the_due_time() -> None:
    adapters = [uuid.UUID(int=i * 7919 + 1) for i in range(20_000)]
    offsets = [spread.offset_seconds(a, DUE, SIX_HOURS) for a in adapters]
    assert all(0 <= o < SIX_HOURS for o in offsets)
    buckets = Counter(o * 10 // SIX_HOURS for o in offsets)  # ten equal slices of the window
    assert sorted(buckets) == list(range(10))
    assert all(1_800 <= n <= 2_200 for n in buckets.values()), buckets  # 2,000 expected each
    # the due time is part of the hash: next quarter the fleet is shuffled, not in the same order
    later = [spread.offset_seconds(a, DUE + dt.timedelta(days=91), SIX_HOURS) for a in adapters]
    assert sum(a == b for a, b in zip(offsets, later, strict=True)) < 50


def test_a_spread_must_be_shorter_than_the_time_between_runs() -> None:
    first = cron.validate("0 3 * * *", "UTC", DUE)
    spread.check("0 3 * * *", "UTC", first, 86_399)
    with pytest.raises(cron.CronError, match="86400 s"):
        spread.check("0 3 * * *", "UTC", first, 86_400)


def test_the_api_shows_and_validates_the_spread(sw: ScheduleWorld) -> None:
    body = sw.set("0 3 1 1,4,7,10 *", spread_seconds=SIX_HOURS)
    due, fire = when(body["next_run_at"]), when(body["next_fire_at"])
    assert body["spread_seconds"] == SIX_HOURS
    adapter_id = uuid.UUID(_adapter_id(sw))
    assert fire == spread.fire_at(adapter_id, due, SIX_HOURS)
    assert due <= fire < due + dt.timedelta(seconds=SIX_HOURS)
    assert sw.schedule()["next_fire_at"] == body["next_fire_at"]

    plain = sw.set("0 3 1 1,4,7,10 *")  # PUT replaces: no spread given, none kept
    assert plain["spread_seconds"] == 0 and plain["next_fire_at"] == plain["next_run_at"]

    too_long = sw.put("0 3 * * *", spread_seconds=86_400)
    assert too_long.status_code == 422 and "shorter than the time between" in too_long.text
    over_max = sw.put("0 3 1 1 *", spread_seconds=90 * 86_400 + 1)
    assert over_max.status_code == 422 and "spread_seconds" in over_max.text
    disabled = sw.set("0 3 * * *", enabled=False, spread_seconds=60)
    assert disabled["next_fire_at"] is None and disabled["next_run_at"] is None


def _adapter_id(sw: ScheduleWorld) -> str:
    resp = sw.http.get("/v1/tenants/acme/adapters/support", headers=sw.acme.headers)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["id"])


def test_the_tick_fires_at_the_fire_time_and_records_it(sw: ScheduleWorld) -> None:
    body = sw.set("0 3 * * *", spread_seconds=3_600)
    due, fire = when(body["next_run_at"]), when(body["next_fire_at"])
    offset = int((fire - due).total_seconds())
    if fire > due:  # due but not yet fired: nothing happens
        early = sw.tick(fire - dt.timedelta(seconds=1))
        assert (early.claimed, early.queued) == (0, [])
    out = sw.tick(fire)
    assert out.claimed == 1 and out.queued_count == 1
    (job,) = sw.jobs()
    ref = job["trigger_ref"]
    assert when(ref["due_at"]) == due and when(ref["ticked_at"]) == fire
    assert ref["offset_seconds"] == offset and ref["spread_seconds"] == 3_600
    schedule = sw.schedule()
    assert when(schedule["last_due_at"]) == due and when(schedule["last_run_at"]) == fire
    next_due = due + dt.timedelta(days=1)
    assert when(schedule["next_run_at"]) == next_due
    adapter_id = uuid.UUID(_adapter_id(sw))
    assert when(schedule["next_fire_at"]) == spread.fire_at(adapter_id, next_due, 3_600)
    (fired,) = sw.audit("schedule.fired")
    details = fired["details"]
    assert details["offset_seconds"] == offset and when(details["fired_at"]) == fire
    assert details["spread_seconds"] == 3_600
    assert when(details["next_fire_at"]) == when(schedule["next_fire_at"])
