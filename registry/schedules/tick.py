"""One scheduler tick: claim the due schedules, queue their retrains, move them forward.

Beat runs it every minute; `loraplex schedules tick [--now]` runs it by hand. Any number of
ticks may run at once (two beats by mistake, a hand run during beat's): the rows are claimed
with FOR UPDATE SKIP LOCKED and advanced in the same transaction that creates the job, so a
due time produces exactly one job. After downtime a schedule that missed several due times
runs once, and its next due time is the first one after `now`.
"""

from __future__ import annotations

import datetime as dt

import structlog
from sqlalchemy.orm import Session

from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.errors import require
from registry.models import Tenant, TrainingSchedule
from registry.models.enums import ScheduleOutcome
from registry.schedules import cron
from registry.schedules.repository import PlatformScheduleRepository
from registry.schedules.schemas import TickOut
from registry.schedules.service import schedules
from registry.settings import Settings
from registry.tasks import TaskQueue
from registry.training.automatic import Skipped, start_retrain

log = structlog.get_logger(__name__)

SCHEDULER = "scheduler"
MAX_MISSED_COUNT = 10_000


def missed_runs(row: TrainingSchedule, due: dt.datetime, now: dt.datetime) -> int:
    """Due times between `due` and `now` that collapse into this one run."""
    count, cursor = 0, due
    while count < MAX_MISSED_COUNT:
        cursor = cron.next_after(row.cron, row.timezone, cursor)
        if cursor > now:
            break
        count += 1
    return count


def tick(
    session: Session,
    *,
    now: dt.datetime,
    settings: Settings,
    queue: TaskQueue,
    limit: int = 100,
) -> TickOut:
    actor = Principal.local_operator(SCHEDULER)
    claimed = PlatformScheduleRepository(session).claim_due(now, limit)
    out = TickOut(now=now, claimed=len(claimed), queued=[], skipped=[])
    for row in claimed:
        tenant = require(session.get(Tenant, row.tenant_id), f"tenant {row.tenant_id}")
        adapter = schedules.adapter_of(session, row)
        due = require(row.next_run_at, f"the next run of the schedule of adapter {row.adapter_id}")
        missed = missed_runs(row, due, now)
        ref = {
            "schedule": {"cron": row.cron, "timezone": row.timezone},
            "due_at": due.isoformat(),
            "ticked_at": now.isoformat(),
            "missed_runs": missed,
            "datasets": row.datasets,
        }
        job_id = None
        try:
            job = start_retrain(
                session,
                tenant=tenant,
                adapter=adapter,
                mode=row.datasets,
                names=row.dataset_names,
                trigger="schedule",
                trigger_ref=ref,
                settings=settings,
                queue=queue,
                actor=actor,
            )
            job_id = job.id
            row.last_outcome = ScheduleOutcome.QUEUED
            row.last_message = f"training job {job.id} queued"
            out.queued.append(job.id)
        except Skipped as exc:
            row.last_outcome, row.last_message = ScheduleOutcome.SKIPPED, str(exc)[:2000]
            out.skipped.append(f"{tenant.slug}/{adapter.name}: {exc}")
        row.last_due_at, row.last_run_at, row.last_job_id = due, now, job_id
        row.next_run_at = cron.next_after(row.cron, row.timezone, now)
        audit.record(
            session,
            actor=actor,
            action="schedule.fired",
            target_type="adapter",
            target_id=str(adapter.id),
            tenant_id=tenant.id,
            details={
                "adapter": adapter.name,
                "due_at": due.isoformat(),
                "missed_runs": missed,
                "outcome": row.last_outcome,
                "message": row.last_message,
                "job_id": str(job_id) if job_id else None,
                "next_run_at": row.next_run_at.isoformat(),
            },
        )
        log.info(
            "schedule.fired",
            tenant=tenant.slug,
            adapter=adapter.name,
            due_at=due.isoformat(),
            outcome=row.last_outcome,
            missed_runs=missed,
        )
    session.flush()
    return out
