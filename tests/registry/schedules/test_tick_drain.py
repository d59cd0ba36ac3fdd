"""The tick drains: batches (each its own transaction) until nothing is due or the budget ends;
skips keep their reasons; what it prints stays short however many it queued."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from registry.schedules import tick as tick_module
from registry.schedules.schemas import TickOut
from registry.schedules.tick import drain
from registry.settings import Settings
from tests.registry.schedules.conftest import ScheduleWorld, when
from tests.registry.training.conftest import ROWS

SECONDS = dt.timedelta(seconds=5)
NAMES = [f"bot{i}" for i in range(5)]


def _fleet(sw: ScheduleWorld) -> dt.datetime:
    """Five more adapters of acme's, all on the same daily cron; their due time."""
    due = None
    for name in NAMES:
        sw.add_adapter(sw.acme, name)
        resp = sw.put("0 3 * * *", adapter=name)
        assert resp.status_code == 200, resp.text
        due = when(resp.json()["next_run_at"])
    assert due is not None
    return due


def _drain(sw: ScheduleWorld, now: dt.datetime, clock=None, **settings: object) -> TickOut:  # type: ignore[no-untyped-def]
    stack = sw.world.stack
    base: Settings = stack.app.state.settings
    kwargs = {"clock": clock} if clock else {}
    return drain(
        stack.app.state.sessionmaker,
        settings=base.model_copy(update=settings),
        queue=stack.tasks,
        now=now,
        **kwargs,
    )


@pytest.mark.smoke
def test_batches_until_nothing_is_due(sw: ScheduleWorld) -> None:
    due = _fleet(sw)
    out = _drain(sw, due + SECONDS, schedule_tick_batch=2)
    assert (out.claimed, out.queued_count, out.skipped_count) == (5, 5, 0)
    assert out.batches == 3 and not out.more_due and len(out.queued) == 5
    jobs = sw.jobs()
    assert sorted(str(j) for j in out.queued) == sorted(j["id"] for j in jobs)
    for name in NAMES:
        (version,) = sw.versions(name)
        assert version["trigger"] == "schedule" and version["version"] == 1
    again = _drain(sw, due + SECONDS, schedule_tick_batch=2)
    assert (again.claimed, again.batches, again.queued) == (0, 0, [])


def test_the_budget_stops_the_loop_and_the_next_tick_goes_on(sw: ScheduleWorld) -> None:
    due = _fleet(sw)

    def ticking() -> Iterator[float]:
        value = 0.0
        while True:
            yield value
            value += 100.0  # every look at the clock: 100 s later

    clock = ticking()
    first = _drain(sw, due + SECONDS, clock=lambda: next(clock), schedule_tick_batch=2)
    assert (first.claimed, first.batches, first.more_due) == (2, 1, True)
    rest = _drain(sw, due + SECONDS, schedule_tick_batch=2)
    assert (rest.claimed, rest.queued_count, rest.more_due) == (3, 3, False)
    assert len(sw.jobs()) == 5


def test_what_it_lists_is_bounded(sw: ScheduleWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tick_module, "LISTED", 2)
    due = _fleet(sw)
    out = _drain(sw, due + SECONDS, schedule_tick_batch=2)
    assert out.queued_count == 5 and len(out.queued) == 2


def test_one_batch_queues_some_and_skips_others_for_their_reasons(sw: ScheduleWorld) -> None:
    due = when(sw.set("0 3 * * *")["next_run_at"])  # acme/support: queued
    sw.add_adapter(sw.acme, "old")
    assert sw.put("0 3 * * *", adapter="old").status_code == 200
    resp = sw.http.post("/v1/tenants/acme/adapters/old/archive", headers=sw.acme.headers)
    assert resp.status_code == 200, resp.text
    busy = sw.create_job().json()["id"]  # acme/support's manual job: the next run is skipped
    globex = sw.world.tenant("globex")
    sw.add_adapter(globex, "bot")
    sw.upload_dataset("g", ROWS, headers=globex.headers, tenant="globex")
    assert sw.put("0 3 * * *", adapter="bot", tenant="globex").status_code == 200
    resp = sw.http.post("/v1/tenants/globex/disable", headers=sw.world.ops.headers)
    assert resp.status_code == 200, resp.text

    out = _drain(sw, due + SECONDS)
    assert (out.claimed, out.queued_count, out.skipped_count) == (3, 0, 3)
    reasons = dict(s.split(": ", 1) for s in out.skipped)
    assert reasons["acme/support"] == f"training job {busy} of adapter 'support' is still queued"
    assert reasons["acme/old"] == "adapter 'old' is archived"
    assert reasons["globex/bot"] == "tenant 'globex' is disabled"
    assert [j["id"] for j in sw.jobs()] == [busy]  # nothing left behind by the skips
    outcomes = sorted(e["details"]["outcome"] for e in sw.audit("schedule.fired"))
    assert outcomes == ["skipped"] * 3
