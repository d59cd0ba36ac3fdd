"""The training backlog for ops: what waits, for whom, and how fast it drains.

Three GROUP BY queries whatever the size of the queue (no per-tenant loop): jobs waiting or
running by status and trigger; the top tenants by queued jobs (one grouped query, the total
count of tenants with a backlog from a window over the groups); and jobs finished in the last
hour by outcome, the drain rate. ETA = (queued + running) / drain rate; `None` when jobs wait
and nothing finished in the last hour, 0 when nothing waits. Paused jobs are shown but are not
backlog: they wait for a person to resume them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.db import utcnow
from registry.models import Tenant, TrainingJob
from registry.models.enums import JobStatus, Trigger

WAITING = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED)
DRAINED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
TRIGGERS = (Trigger.MANUAL, Trigger.DRIFT, Trigger.SCHEDULE)  # a job is never `upload`
DRAIN_WINDOW = dt.timedelta(hours=1)
# The fair-queue settings and their defaults (issue 22, part C); read defensively so this
# module works with settings that do not define them.
PRIORITY_DEFAULTS = {Trigger.MANUAL: 10, Trigger.DRIFT: 10, Trigger.SCHEDULE: 0}
TENANT_CONCURRENCY_DEFAULT = 2


class TriggerBacklog(BaseModel):
    trigger: str
    queued: int
    running: int
    paused: int


class TenantBacklog(BaseModel):
    tenant: str
    queued: int
    running: int
    paused: int
    oldest_queued_at: dt.datetime | None
    oldest_queued_seconds: float | None


class Drained(BaseModel):
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0


class QueuePolicy(BaseModel):
    priorities: dict[str, int] = Field(description="claim priority per trigger (higher first)")
    tenant_concurrency: int = Field(description="running jobs one tenant may have at once")


class TrainingBacklog(BaseModel):
    generated_at: dt.datetime
    tenant: str | None = Field(description="the tenant this is filtered to, if any")
    queued: int
    running: int
    paused: int = Field(description="waiting for a resume; not counted in the backlog")
    backlog: int = Field(description="queued + running")
    by_trigger: list[TriggerBacklog]
    tenants: list[TenantBacklog] = Field(description="top tenants by queued, then running jobs")
    tenants_with_backlog: int | None = Field(
        description="tenants with queued, running or paused jobs (null when no tenant is listed)"
    )
    oldest_queued_at: dt.datetime | None = Field(description="created_at of the oldest queued")
    oldest_queued_seconds: float | None
    drained_last_hour: Drained
    drain_per_hour: int = Field(description="jobs finished in the last hour, any outcome")
    eta_seconds: float | None = Field(
        description="backlog / drain rate; null when jobs wait and none finished in the hour"
    )
    eta_at: dt.datetime | None
    policy: QueuePolicy


def queue_policy(settings: Any) -> QueuePolicy:
    """The priorities and the tenant cap in force (defaults where settings lack them)."""
    priorities = {
        t.value: int(getattr(settings, f"training_priority_{t.value}", default))
        for t, default in PRIORITY_DEFAULTS.items()
    }
    cap = int(getattr(settings, "training_tenant_concurrency", TENANT_CONCURRENCY_DEFAULT))
    return QueuePolicy(priorities=priorities, tenant_concurrency=cap)


def _age(now: dt.datetime, when: dt.datetime | None) -> float | None:
    return None if when is None else round(max(0.0, (now - when).total_seconds()), 3)


def _count(status: JobStatus) -> Any:
    return func.count().filter(TrainingJob.status == status)


def _by_trigger(session: Session, tenant_id: uuid.UUID | None) -> list[Any]:
    stmt = select(
        TrainingJob.status,
        TrainingJob.trigger,
        func.count(),
        func.min(TrainingJob.created_at),
    ).where(TrainingJob.status.in_(WAITING))
    if tenant_id is not None:
        stmt = stmt.where(TrainingJob.tenant_id == tenant_id)
    return list(session.execute(stmt.group_by(TrainingJob.status, TrainingJob.trigger)).all())


def _top_tenants(session: Session, tenant_id: uuid.UUID | None, limit: int) -> list[Any]:
    queued, running = _count(JobStatus.QUEUED), _count(JobStatus.RUNNING)
    oldest = func.min(TrainingJob.created_at).filter(TrainingJob.status == JobStatus.QUEUED)
    groups = (
        select(
            TrainingJob.tenant_id.label("tenant_id"),
            queued.label("queued"),
            running.label("running"),
            _count(JobStatus.PAUSED).label("paused"),
            oldest.label("oldest"),
            func.count().over().label("groups"),
        )
        .where(TrainingJob.status.in_(WAITING))
        .group_by(TrainingJob.tenant_id)
    )
    if tenant_id is not None:
        groups = groups.where(TrainingJob.tenant_id == tenant_id)
    top = (
        groups.order_by(queued.desc(), running.desc(), oldest.asc(), TrainingJob.tenant_id)
        .limit(limit)
        .subquery()
    )
    stmt = (
        select(top, Tenant.slug)
        .join(Tenant, Tenant.id == top.c.tenant_id)
        .order_by(top.c.queued.desc(), top.c.running.desc(), top.c.oldest.asc(), Tenant.id)
    )
    return list(session.execute(stmt).all())


def _drained(session: Session, tenant_id: uuid.UUID | None, since: dt.datetime) -> Drained:
    stmt = select(TrainingJob.status, func.count()).where(
        TrainingJob.finished_at >= since, TrainingJob.status.in_(DRAINED)
    )
    if tenant_id is not None:
        stmt = stmt.where(TrainingJob.tenant_id == tenant_id)
    counts = {JobStatus(s).value: n for s, n in session.execute(stmt.group_by(TrainingJob.status))}
    return Drained(**counts, total=sum(counts.values()))


def compute(
    session: Session,
    *,
    settings: Any,
    tenant: Tenant | None = None,
    limit: int = 10,
    now: dt.datetime | None = None,
) -> TrainingBacklog:
    """The backlog across tenants (or one tenant's); `limit` top tenants (0: none listed)."""
    now = now or utcnow()
    tenant_id = tenant.id if tenant is not None else None
    counts: dict[tuple[str, str], int] = {}
    oldest: dt.datetime | None = None
    for status, trigger, n, first in _by_trigger(session, tenant_id):
        counts[(JobStatus(status).value, Trigger(trigger).value)] = n
        if status == JobStatus.QUEUED and first is not None:
            oldest = first if oldest is None else min(oldest, first)
    triggers = [t.value for t in TRIGGERS] + sorted(
        {t for _, t in counts} - {t.value for t in TRIGGERS}
    )
    by_trigger = [
        TriggerBacklog(
            trigger=t,
            queued=counts.get(("queued", t), 0),
            running=counts.get(("running", t), 0),
            paused=counts.get(("paused", t), 0),
        )
        for t in triggers
    ]
    queued = sum(t.queued for t in by_trigger)
    running = sum(t.running for t in by_trigger)
    paused = sum(t.paused for t in by_trigger)
    rows = _top_tenants(session, tenant_id, limit) if limit > 0 else []
    tenants = [
        TenantBacklog(
            tenant=r.slug,
            queued=int(r.queued),
            running=int(r.running),
            paused=int(r.paused),
            oldest_queued_at=r.oldest,
            oldest_queued_seconds=_age(now, r.oldest),
        )
        for r in rows
    ]
    with_backlog = (int(rows[0].groups) if rows else 0) if limit > 0 else None
    drained = _drained(session, tenant_id, now - DRAIN_WINDOW)
    backlog = queued + running
    eta: float | None
    if backlog == 0:
        eta = 0.0
    elif drained.total == 0:
        eta = None
    else:
        eta = round(backlog * DRAIN_WINDOW.total_seconds() / drained.total, 1)
    return TrainingBacklog(
        generated_at=now,
        tenant=tenant.slug if tenant is not None else None,
        queued=queued,
        running=running,
        paused=paused,
        backlog=backlog,
        by_trigger=by_trigger,
        tenants=tenants,
        tenants_with_backlog=with_backlog,
        oldest_queued_at=oldest,
        oldest_queued_seconds=_age(now, oldest),
        drained_last_hour=drained,
        drain_per_hour=drained.total,
        eta_seconds=eta,
        eta_at=None if eta is None else now + dt.timedelta(seconds=eta),
        policy=queue_policy(settings),
    )
