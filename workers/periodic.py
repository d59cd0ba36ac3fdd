"""The scheduler tick as a task: one transaction, jobs sent after its commit."""

from __future__ import annotations

import datetime as dt

from registry.db import utcnow
from registry.schedules.schemas import TickOut
from registry.schedules.tick import tick
from workers.context import WorkerContext


def run_tick(ctx: WorkerContext, *, now: dt.datetime | None = None) -> TickOut:
    with ctx.session() as session:
        return tick(session, now=now or utcnow(), settings=ctx.settings, queue=ctx.queue)
