"""Running tasks in-process (no broker): the embedded default's worker."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from registry.settings import Settings
from registry.tasks import DRIFT, REAP, SCHEDULE_TICK, TRAIN, TaskQueue
from workers.context import WorkerContext, build_context

_contexts: dict[int, WorkerContext] = {}


def _context(settings: Settings, queue: TaskQueue) -> WorkerContext:
    key = id(queue)
    if key not in _contexts:
        _contexts[key] = build_context(settings, queue)
    return _contexts[key]


def run_task(name: str, args: list[Any], *, settings: Settings, queue: TaskQueue) -> None:
    from workers.drift import compute_drift
    from workers.periodic import run_tick
    from workers.reaper import reap
    from workers.train_job import run_training

    ctx = _context(settings, queue)
    handlers: dict[str, Callable[[], object]] = {
        TRAIN: lambda: run_training(ctx, args[0], host=f"embedded@{socket.gethostname()}"),
        REAP: lambda: reap(ctx),
        SCHEDULE_TICK: lambda: run_tick(ctx),
        DRIFT: lambda: compute_drift(ctx),
    }
    handlers[name]()
