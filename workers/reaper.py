"""Finds jobs whose worker died (lease expired) and retries or fails them; re-sends queued
jobs whose message was lost. Runs from beat every `reaper_interval_seconds`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import structlog

from registry.db import after_commit, utcnow
from registry.tasks import TRAIN
from registry.training.lifecycle import lifecycle
from workers.cache import delete_prefix
from workers.context import WorkerContext

log = structlog.get_logger(__name__)


def retry_delay(ctx: WorkerContext, attempts: int) -> float:
    return float(ctx.settings.job_retry_backoff_seconds * 2 ** max(0, attempts - 1))


def _sender(ctx: WorkerContext, job_id: str) -> Callable[[], None]:
    return lambda: ctx.queue.send(TRAIN, [job_id])


def reap(ctx: WorkerContext, *, now: dt.datetime | None = None) -> dict[str, int]:
    now = now or utcnow()
    stale_after = dt.timedelta(seconds=ctx.settings.job_resend_seconds)
    with ctx.session() as session:
        reaped = lifecycle.reap(session, now=now)
        stale = lifecycle.stale_queued(session, older_than=now - stale_after)
        for job_id in [r.job_id for r in reaped if r.requeued] + stale:
            after_commit(session, _sender(ctx, str(job_id)))
    for item in reaped:
        if item.artifact_prefix:
            delete_prefix(ctx.store, item.artifact_prefix)
        log.warning("job.reaped", job_id=str(item.job_id), requeued=item.requeued)
    return {
        "requeued": sum(r.requeued for r in reaped),
        "failed": sum(not r.requeued for r in reaped),
        "resent": len(stale),
    }
