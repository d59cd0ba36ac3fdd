"""Finds jobs whose worker died (lease expired) and retries or fails them; rings doorbells
(at most `training_wakeups`) for queued jobs left unclaimed past `job_resend_seconds` (a lost
message). Runs from beat every `reaper_interval_seconds`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import structlog

from registry.db import after_commit, utcnow
from registry.labelling.repository import PlatformLabellingRepository
from registry.labelling.service import labelling
from registry.tasks import LABEL
from registry.training.lifecycle import lifecycle
from registry.training.queueing import wake
from workers.cache import delete_prefix
from workers.context import WorkerContext

log = structlog.get_logger(__name__)
LABELLING_STALE = dt.timedelta(minutes=10)  # a labelling worker beats about once a second


def retry_delay(ctx: WorkerContext, attempts: int) -> float:
    return float(ctx.settings.job_retry_backoff_seconds * 2 ** max(0, attempts - 1))


def _label_sender(ctx: WorkerContext, job_id: str) -> Callable[[], None]:
    return lambda: ctx.queue.send(LABEL, [job_id])


def reap(ctx: WorkerContext, *, now: dt.datetime | None = None) -> dict[str, int]:
    now = now or utcnow()
    stale_after = dt.timedelta(seconds=ctx.settings.job_resend_seconds)
    with ctx.session() as session:
        reaped = lifecycle.reap(session, now=now)
        stale = lifecycle.stale_queued(
            session,
            older_than=now - stale_after,
            limit=ctx.settings.training_wakeups,
            tenant_cap=ctx.settings.training_tenant_concurrency,
        )
        doorbells = [r.job_id for r in reaped if r.requeued] + stale
        wake(session, queue=ctx.queue, settings=ctx.settings, job_ids=doorbells)
        lost = labelling.fail_stale(session, before=now - LABELLING_STALE)
        unsent = PlatformLabellingRepository(session).queued_before(now - stale_after)
        for job in unsent:
            after_commit(session, _label_sender(ctx, str(job.id)))
    for item in reaped:
        if item.artifact_prefix:
            delete_prefix(ctx.store, item.artifact_prefix)
        log.warning("job.reaped", job_id=str(item.job_id), requeued=item.requeued)
    for job_id in lost:
        log.warning("labelling.reaped", job_id=str(job_id))
    return {
        "labelling_failed": len(lost),
        "labelling_resent": len(unsent),
        "requeued": sum(r.requeued for r in reaped),
        "failed": sum(not r.requeued for r in reaped),
        "resent": len(stale),
        "doorbells": min(len(doorbells), ctx.settings.training_wakeups),
    }
