"""The one task table: what each task name runs. Celery (`workers/tasks.py`) and the in-process
queue (`workers/inprocess.py`) both dispatch through it. Job code is imported when a task runs,
so importing this module stays cheap."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from registry.tasks import (
    AUDIT_ANCHOR,
    DRIFT,
    LABEL,
    REAP,
    SCHEDULE_TICK,
    SPLIT_CHECK,
    TASK_NAMES,
    TRAFFIC_RETENTION,
    TRAIN,
)
from workers.context import WorkerContext


def _train(ctx: WorkerContext, args: Sequence[Any], host: str) -> object:
    from workers.train_job import run_training

    run_training(ctx, str(args[0]) if args else None, host=host)
    return None


def _reap(ctx: WorkerContext, args: Sequence[Any], host: str) -> object:
    from workers.reaper import reap

    return reap(ctx)


def _tick(ctx: WorkerContext, args: Sequence[Any], host: str) -> object:
    from workers.periodic import run_tick

    return run_tick(ctx)


def _drift(ctx: WorkerContext, args: Sequence[Any], host: str) -> object:
    from workers.drift import compute_drift

    return compute_drift(ctx)


def _anchor(ctx: WorkerContext, args: Sequence[Any], host: str) -> object:
    from registry.audit.service import audit

    days = ctx.settings.audit_anchor_retention_days
    with ctx.session() as session:
        result = audit.anchor(session, store=ctx.store, retain_days=days)
    return dataclasses.asdict(result)  # a Celery result is JSON


def _retention(ctx: WorkerContext, args: Sequence[Any], host: str) -> object:
    from registry.traffic.retention import expire_traces

    with ctx.session() as session:
        result = expire_traces(session, store=ctx.store, settings=ctx.settings)
    return dataclasses.asdict(result)


def _label(ctx: WorkerContext, args: Sequence[Any], host: str) -> object:
    from workers.labelling import run_labelling

    run_labelling(ctx, str(args[0]), host=host)
    return None


def _splits(ctx: WorkerContext, args: Sequence[Any], host: str) -> object:
    from registry.splits.rollback import check_splits

    return dataclasses.asdict(check_splits(ctx.session, actor=ctx.actor))


Handler = Callable[[WorkerContext, Sequence[Any], str], object]
TASKS: dict[str, Handler] = {
    TRAIN: _train,
    REAP: _reap,
    SCHEDULE_TICK: _tick,
    DRIFT: _drift,
    AUDIT_ANCHOR: _anchor,
    TRAFFIC_RETENTION: _retention,
    LABEL: _label,
    SPLIT_CHECK: _splits,
}
if set(TASKS) != set(TASK_NAMES):  # a name sent by the registry that nothing would run
    raise RuntimeError(f"task table out of step with registry.tasks: {sorted(TASKS)}")


def run_task(ctx: WorkerContext, name: str, args: Sequence[Any] = (), *, host: str) -> object:
    try:
        handler = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}") from None
    return handler(ctx, args, host)
