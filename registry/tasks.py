"""Sending work to workers by task name: the registry never imports the worker code it queues.

The registry only sends. With a broker (`LORAPLEX_BROKER_URL`), `CeleryQueue` sends to Celery;
without one (the embedded default), the composition root (`cli/`) hands the app the in-process
queue from `workers/inprocess.py`, which runs the same task table on background threads.
Services register sends with `after_commit`, so a worker never sees a job before its row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import structlog

from registry.settings import Settings

log = structlog.get_logger(__name__)

TRAIN = "loraplex.train"
REAP = "loraplex.reap_jobs"
SCHEDULE_TICK = "loraplex.schedules_tick"
DRIFT = "loraplex.compute_drift"
AUDIT_ANCHOR = "loraplex.audit_anchor"
TRAFFIC_RETENTION = "loraplex.traffic_retention"
LABEL = "loraplex.label"
SPLIT_CHECK = "loraplex.check_splits"
TASK_NAMES = (
    TRAIN,
    REAP,
    SCHEDULE_TICK,
    DRIFT,
    AUDIT_ANCHOR,
    TRAFFIC_RETENTION,
    LABEL,
    SPLIT_CHECK,
)
QUEUES = {TRAIN: "training"}  # everything else: "default"


def queue_of(name: str) -> str:
    return QUEUES.get(name, "default")


def periodic_tasks(settings: Settings) -> list[tuple[str, str, float]]:
    """(schedule name, task, every seconds): what beat sends, or the embedded server runs."""
    out = [
        ("reap-training-jobs", REAP, float(settings.reaper_interval_seconds)),
        ("tick-schedules", SCHEDULE_TICK, float(settings.schedule_tick_seconds)),
    ]
    if settings.drift_interval_seconds:
        out.append(("compute-drift", DRIFT, float(settings.drift_interval_seconds)))
    if settings.audit_anchor_interval_seconds:
        out.append(("anchor-audit", AUDIT_ANCHOR, float(settings.audit_anchor_interval_seconds)))
    if settings.traffic_retention_interval_seconds:
        every = float(settings.traffic_retention_interval_seconds)
        out.append(("expire-traces", TRAFFIC_RETENTION, every))
    if settings.split_check_seconds:
        out.append(("check-splits", SPLIT_CHECK, float(settings.split_check_seconds)))
    return out


class TaskQueue(Protocol):
    def send(self, name: str, args: Sequence[Any] = (), *, countdown: float = 0) -> None: ...


@runtime_checkable
class InProcessWork(Protocol):
    """A queue that is its own worker (the embedded default): the app starts it with itself,
    so that it also runs beat's periodic tasks, and closes it on shutdown."""

    def start(self) -> None: ...

    def close(self) -> None: ...


# At most ~1.5 s of retries before a send is given up (and left to the reaper).
SEND_RETRY_POLICY = {
    "max_retries": 3,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 0.5,
}


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
        """Publish, retrying briefly; a broker that stays down is logged, not raised.

        Sends run after a commit (the row is the record): raising would turn a committed
        request into an error. The reaper re-sends queued jobs whose message was lost. No
        result is kept (`ignore_result`): with one, the send would first wait ~20 s on a
        Redis result backend that is down.
        """
        from kombu.exceptions import OperationalError as BrokerError

        try:
            self.app.send_task(
                name,
                args=list(args),
                queue=queue_of(name),
                countdown=countdown or None,
                ignore_result=True,
                retry=True,
                retry_policy=SEND_RETRY_POLICY,
            )
        except (BrokerError, OSError) as exc:
            log.error("task.send_failed", task=name, args=[str(a) for a in args], error=repr(exc))
            return
        log.info("task.sent", task=name, args=[str(a) for a in args])
