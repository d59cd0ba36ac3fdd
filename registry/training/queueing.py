"""How training jobs reach workers: the database is the queue, a TRAIN message is a doorbell.

A worker that gets TRAIN (its argument, a job id, is only a hint) claims the next job in fair
order (`next_job_id`, under `lock_claims`):
1. the highest `priority` (set at creation from the trigger: `priority_for`);
2. then the tenant whose last job started least recently (round robin across tenants; a
   tenant that never started one goes first);
3. then the oldest job.
It skips jobs whose adapter has a running job, tenants already running
`training_tenant_concurrency` jobs, and jobs waiting out a retry backoff (`not_before`).

`wake` rings, after commit, at most `training_wakeups` doorbells for the jobs a transaction
queued; `ring` rings one when claimable work remains (a worker that finished a job).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, or_, select, text
from sqlalchemy.orm import Session

from registry.db import after_commit, utcnow
from registry.models import TrainingJob
from registry.models.enums import JobStatus, Trigger
from registry.models.training_job import TrainingTenantTurn
from registry.settings import Settings
from registry.tasks import TRAIN, TaskQueue

# pg_advisory_xact_lock key of the claim ("lptrain" in ASCII): claims queue on it for the
# milliseconds of one pick, so two workers never pick the same job or break the caps.
CLAIM_LOCK_KEY = 0x6C70747261696E


def priority_for(trigger: str, settings: Settings | None) -> int:
    """A job's priority from what started it (a manual or upload job: the manual one)."""
    name = {Trigger.SCHEDULE: "schedule", Trigger.DRIFT: "drift"}.get(Trigger(trigger), "manual")
    return _setting(f"training_priority_{name}", settings)


def _setting(field: str, settings: Settings | None) -> int:
    """A setting's value, or its default for a caller with no settings at hand."""
    if settings is None:
        return int(Settings.model_fields[field].default)
    return int(getattr(settings, field))


def wake(
    session: Session,
    *,
    queue: TaskQueue,
    settings: Settings | None,
    job_ids: Sequence[uuid.UUID],
) -> None:
    """After commit, ring at most `training_wakeups` doorbells for `job_ids` (queued in this
    transaction; the first ones go as hints). Each worker claims in fair order, whatever the
    hint; a lost doorbell is rung again by the reaper."""
    cap = _setting("training_wakeups", settings)
    ids = [str(j) for j in job_ids[:cap]]

    def send() -> None:
        for job_id in ids:
            queue.send(TRAIN, [job_id])

    if ids:
        after_commit(session, send)


def ring(session: Session, *, queue: TaskQueue, settings: Settings) -> uuid.UUID | None:
    """After commit, one doorbell if some job is claimable now (the next one is the hint)."""
    hint = next_job_id(session, now=utcnow(), tenant_cap=settings.training_tenant_concurrency)
    if hint is not None:
        sent = str(hint)
        after_commit(session, lambda: queue.send(TRAIN, [sent]))
    return hint


def lock_claims(session: Session) -> None:
    """Serialize claims until this transaction ends (PostgreSQL; SQLite has one writer)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK_KEY})


def claimable(session: Session, *, now: dt.datetime, tenant_cap: int | None) -> list[Any]:
    """WHERE clauses of a claimable job: queued, past its backoff, its adapter idle, its
    tenant under the cap (running jobs are few: one small query, by the status index)."""
    running = session.execute(
        select(TrainingJob.tenant_id, TrainingJob.adapter_id).where(
            TrainingJob.status == JobStatus.RUNNING
        )
    ).all()
    conds: list[ColumnElement[bool]] = [
        TrainingJob.status == JobStatus.QUEUED,
        or_(TrainingJob.not_before.is_(None), TrainingJob.not_before <= now),
    ]
    busy = {adapter_id for _, adapter_id in running}
    if busy:
        conds.append(TrainingJob.adapter_id.not_in(busy))
    if tenant_cap is not None:
        counts = Counter(tenant_id for tenant_id, _ in running)
        capped = {t for t, n in counts.items() if n >= tenant_cap}
        if capped:
            conds.append(TrainingJob.tenant_id.not_in(capped))
    return conds


def next_job_id(session: Session, *, now: dt.datetime, tenant_cap: int) -> uuid.UUID | None:
    """The job the next claim takes, in fair order (exact only under `lock_claims`)."""
    conds = claimable(session, now=now, tenant_cap=tenant_cap)
    top = session.scalar(
        select(TrainingJob.priority).where(*conds).order_by(TrainingJob.priority.desc()).limit(1)
    )
    if top is None:
        return None
    stmt = (
        select(TrainingJob.id)
        .outerjoin(TrainingTenantTurn, TrainingTenantTurn.tenant_id == TrainingJob.tenant_id)
        .where(*conds, TrainingJob.priority == top)
        .order_by(
            TrainingTenantTurn.last_started_at.asc().nulls_first(),
            TrainingJob.created_at,
            TrainingJob.id,
        )
        .limit(1)
    )
    return session.scalar(stmt)


def took_turn(session: Session, tenant_id: uuid.UUID, now: dt.datetime) -> None:
    """The tenant just had a job started: it goes to the back of the round."""
    turn = session.get(TrainingTenantTurn, tenant_id)
    if turn is None:
        session.add(TrainingTenantTurn(tenant_id=tenant_id, last_started_at=now))
    else:
        turn.last_started_at = now


def stale_job_ids(
    session: Session, *, older_than: dt.datetime, tenant_cap: int | None, limit: int
) -> list[uuid.UUID]:
    """Up to `limit` claimable jobs queued and untouched since `older_than` (their doorbell
    was lost); each is touched, so it is counted again only after another period."""
    stmt = (
        select(TrainingJob)
        .where(*claimable(session, now=utcnow(), tenant_cap=tenant_cap))
        .where(TrainingJob.updated_at < older_than)
        .order_by(TrainingJob.created_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    jobs = session.execute(stmt).scalars().all()
    now = utcnow()
    for job in jobs:
        job.updated_at = now
    session.flush()
    return [j.id for j in jobs]
