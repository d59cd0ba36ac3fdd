"""Two (or six) scheduler ticks at once on real PostgreSQL: one job per due time."""

from __future__ import annotations

import datetime as dt
import threading

from registry.db import run_unit_of_work
from registry.schedules.schemas import TickOut
from registry.schedules.tick import tick
from tests.retraining.conftest import Retraining, orders


def _ticks(r: Retraining, now: dt.datetime, count: int) -> list[TickOut]:
    barrier = threading.Barrier(count)
    outs: list[TickOut] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            for session in run_unit_of_work(r.ctx.sessions):
                outs.append(tick(session, now=now, settings=r.ctx.settings, queue=r.tasks))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return outs


def test_concurrent_ticks_create_exactly_one_job_per_due_schedule(retraining: Retraining) -> None:
    r = retraining
    r.dataset("initech", "orders", orders(20, seed=0))
    names = [f"nightly{i}" for i in range(4)]
    due = None
    for name in names:
        r.adapter("initech", name)
        body = r.ok(
            r.http.put(
                f"/v1/tenants/initech/adapters/{name}/schedule",
                json={"cron": "0 3 * * *", "timezone": "UTC"},
                headers=r.ops,
            )
        )
        due = dt.datetime.fromisoformat(body["next_run_at"])
    assert due is not None

    outs = _ticks(r, due + dt.timedelta(minutes=1), 6)

    queued = [job for out in outs for job in out.queued]
    assert len(queued) == len(names) == len(set(queued))
    assert sum(out.claimed for out in outs) == len(names)  # no schedule claimed twice
    for name in names:
        jobs = r.jobs("initech", name)
        assert [j["trigger"] for j in jobs] == ["schedule"], jobs
        assert r.train_tasks(jobs[0]["id"]) == 1
        schedule = r.ok(r.http.get(f"/v1/tenants/initech/adapters/{name}/schedule", headers=r.ops))
        assert schedule["last_outcome"] == "queued"
        assert dt.datetime.fromisoformat(schedule["next_run_at"]) == due + dt.timedelta(days=1)
    # Ticks at the same moment again: nothing is due any more.
    assert sum(len(out.queued) for out in _ticks(r, due + dt.timedelta(minutes=1), 2)) == 0
