"""The embedded default's queue (no broker): tasks run in this process on background threads,
through the same task table as Celery; started with the registry, it also runs beat's periodic
tasks. One training thread, one thread for everything else."""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from registry.settings import Settings
from registry.tasks import periodic_tasks, queue_of
from workers.context import WorkerContext, build_context
from workers.task_table import run_task

log = structlog.get_logger(__name__)


class InProcessQueue:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.host = f"embedded@{socket.gethostname()}"
        self._pools = {
            "training": ThreadPoolExecutor(1, thread_name_prefix="loraplex-train"),
            "default": ThreadPoolExecutor(1, thread_name_prefix="loraplex-task"),
        }
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._context: WorkerContext | None = None

    @property
    def context(self) -> WorkerContext:
        """The worker context the tasks run with (built on first use; its queue is this one)."""
        with self._lock:
            if self._context is None:
                self._context = build_context(self.settings, self)
            return self._context

    def send(self, name: str, args: Sequence[Any] = (), *, countdown: float = 0) -> None:
        pool = self._pools[queue_of(name)]
        if countdown > 0:
            timer = threading.Timer(countdown, pool.submit, args=(self._run, name, list(args)))
            timer.daemon = True
            timer.start()
        else:
            pool.submit(self._run, name, list(args))

    def start(self) -> None:
        """What beat does with a broker: a daemon thread per periodic task."""
        for _, name, every in periodic_tasks(self.settings):
            thread = threading.Thread(
                target=self._every, args=(name, every), name=f"loraplex-every-{name}", daemon=True
            )
            thread.start()

    def _every(self, name: str, seconds: float) -> None:
        while not self._stop.wait(seconds):
            self.send(name)

    def _run(self, name: str, args: list[Any]) -> None:
        try:
            run_task(self.context, name, args, host=self.host)
        except Exception:
            log.exception("task.failed", task=name)

    def drain(self) -> None:
        """Wait until every task sent so far has run (a one-shot command before it exits;
        new work cannot be scheduled once the interpreter starts shutting down)."""
        for name in ("default", "training"):
            self._pools[name].shutdown(wait=True)

    def close(self) -> None:
        self._stop.set()
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
