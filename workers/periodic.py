"""The scheduler tick as a task: batches of due schedules, each its own transaction, its jobs
sent after its commit, until none is due or the tick's time budget is spent."""

from __future__ import annotations

import datetime as dt

from registry.schedules.schemas import TickOut
from registry.schedules.tick import drain
from workers.context import WorkerContext


def run_tick(ctx: WorkerContext, *, now: dt.datetime | None = None) -> TickOut:
    return drain(ctx.sessions, settings=ctx.settings, queue=ctx.queue, now=now)
