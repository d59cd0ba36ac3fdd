"""Sending work to workers by task name: the registry never imports the worker code it queues.

With a broker (`LORAPLEX_BROKER_URL`), tasks go to Celery. Without one (the embedded default),
they run in this process on background threads, through the same task functions.
Services register sends with `after_commit`, so a worker never sees a job before its row.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import structlog

from registry.settings import Settings

log = structlog.get_logger(__name__)

TRAIN = "loraplex.train"
REAP = "loraplex.reap_jobs"
SCHEDULE_TICK = "loraplex.schedules_tick"
DRIFT = "loraplex.compute_drift"
QUEUES = {TRAIN: "training"}  # everything else: "default"


class TaskQueue(Protocol):
    def send(self, name: str, args: Sequence[Any] = (), *, countdown: float = 0) -> None: ...


class CeleryQueue:
    def __init__(self, settings: Settings) -> None:
        from celery import Celery

        self.app = Celery(
            "loraplex-registry",
            broker=settings.broker_url,
            backend=settings.result_backend_url or settings.broker_url,
        )
        self.app.conf.broker_connection_timeout = 5
        self.app.conf.broker_transport_options = {"socket_timeout": 5}

    def send(self, name: str, args: Sequence[Any] = (), *, countdown: float = 0) -> None:
        self.app.send_task(
            name, args=list(args), queue=QUEUES.get(name, "default"), countdown=countdown or None
        )
        log.info("task.sent", task=name, args=[str(a) for a in args])


class InProcessQueue:
    """The embedded default: one training thread, one thread for everything else."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pools = {
            "training": ThreadPoolExecutor(1, thread_name_prefix="loraplex-train"),
            "default": ThreadPoolExecutor(1, thread_name_prefix="loraplex-task"),
        }

    def send(self, name: str, args: Sequence[Any] = (), *, countdown: float = 0) -> None:
        pool = self._pools[QUEUES.get(name, "default")]
        if countdown > 0:
            timer = threading.Timer(countdown, pool.submit, args=(self._run, name, list(args)))
            timer.daemon = True
            timer.start()
        else:
            pool.submit(self._run, name, list(args))

    def start_periodic(self, name: str, every_seconds: float) -> None:
        """What beat does with a broker: here a daemon thread (the embedded server only)."""
        if not hasattr(self, "_stop"):
            self._stop = threading.Event()
        stop = self._stop

        def loop() -> None:
            while not stop.wait(every_seconds):
                self.send(name)

        threading.Thread(target=loop, name=f"loraplex-periodic-{name}", daemon=True).start()

    def _run(self, name: str, args: list[Any]) -> None:
        from workers.embedded import run_task  # the worker code, imported only when used

        try:
            run_task(name, args, settings=self.settings, queue=self)
        except Exception:
            log.exception("task.failed", task=name)

    def drain(self) -> None:
        """Wait until every task sent so far has run (a one-shot command before it exits;
        new work cannot be scheduled once the interpreter starts shutting down)."""
        for name in ("default", "training"):
            self._pools[name].shutdown(wait=True)

    def shutdown(self) -> None:
        if hasattr(self, "_stop"):
            self._stop.set()
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)


def make_queue(settings: Settings) -> TaskQueue:
    return CeleryQueue(settings) if settings.broker_url else InProcessQueue(settings)
