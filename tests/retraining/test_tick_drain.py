"""Two tick loops at once on real PostgreSQL, batch after batch: one job per due schedule."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import func, select

from registry.db import run_unit_of_work
from registry.models import AdapterVersion, TrainingJob
from registry.schedules.schemas import TickOut
from registry.schedules.tick import drain
from tests.retraining.conftest import Retraining, orders

FLEET = 24


def _loops(r: Retraining, now: dt.datetime, count: int, batch: int) -> list[TickOut]:
    settings = r.ctx.settings.model_copy(update={"schedule_tick_batch": batch})
    barrier = threading.Barrier(count)
    outs: list[TickOut] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            outs.append(drain(r.ctx.sessions, settings=settings, queue=r.tasks, now=now))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return outs


def test_two_draining_loops_queue_exactly_one_job_per_schedule(retraining: Retraining) -> None:
    r = retraining
    r.dataset("umbrella", "orders", orders(20, seed=1))
    due = None
    for i in range(FLEET):
        name = f"q{i}"
        r.adapter("umbrella", name)  # v1 uploaded, in production
        body = r.ok(
            r.http.put(
                f"/v1/tenants/umbrella/adapters/{name}/schedule",
                json={"cron": "0 3 1 1,4,7,10 *", "spread_seconds": 600},
                headers=r.ops,
            )
        )
        fire = dt.datetime.fromisoformat(body["next_fire_at"])
        due = max(due or fire, fire)
    assert due is not None

    outs = _loops(r, due, 2, batch=5)

    assert sum(o.claimed for o in outs) == FLEET  # no schedule claimed twice
    assert sum(o.queued_count for o in outs) == FLEET
    assert sum(o.batches for o in outs) >= FLEET // 5
    for session in run_unit_of_work(r.ctx.sessions):
        jobs = session.execute(
            select(TrainingJob.adapter_id, func.count()).group_by(TrainingJob.adapter_id)
        ).all()
        queued = session.execute(
            select(AdapterVersion.adapter_id, func.count())
            .where(AdapterVersion.status == "queued")
            .group_by(AdapterVersion.adapter_id)
        ).all()
    assert len(jobs) == FLEET and all(n == 1 for _, n in jobs)
    assert len(queued) == FLEET and all(n == 1 for _, n in queued)
    for i in range(FLEET):
        (job,) = r.jobs("umbrella", f"q{i}")
        assert job["trigger"] == "schedule"
    # The same moment again: nothing is due any more.
    assert sum(o.claimed for o in _loops(r, due, 2, batch=5)) == 0
