"""The scheduler tick: claim the schedules whose fire time has come, queue their retrains, move
them forward; batch after batch, each its own transaction, until none is due or the budget ends.

Beat runs `drain` every minute; `loraplex schedules tick [--now]` runs it by hand. Any number of
ticks may run at once (two beats by mistake, a hand run during beat's): the rows are claimed
with FOR UPDATE SKIP LOCKED and advanced in the same transaction that creates the jobs, so a
due time produces exactly one job. After downtime a schedule that missed several due times
runs once, and its next due time is the first one after the time it fired.

A batch costs a handful of statements whatever its size (registry.training.bulk): 10^5
schedules due on the same minute are queued within minutes, not hours.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy.orm import Session, sessionmaker

from registry.audit.service import AuditItem
from registry.auth.principal import Principal
from registry.db import run_unit_of_work, utcnow
from registry.errors import require
from registry.models import TrainingSchedule
from registry.models.enums import ScheduleOutcome
from registry.schedules import cron, spread
from registry.schedules.repository import PlatformScheduleRepository
from registry.schedules.schemas import TickOut
from registry.settings import Settings
from registry.tasks import TaskQueue
from registry.training import bulk
from registry.training.bulk_select import RetrainRequest

log = structlog.get_logger(__name__)

SCHEDULER = "scheduler"
LISTED = 100  # job ids and skip reasons a TickOut lists (its counts have them all)


def missed_runs(row: TrainingSchedule, due: dt.datetime, now: dt.datetime) -> int:
    """Due times between `due` and `now` that collapse into this one run."""
    return cron.advance(row.cron, row.timezone, due, now)[0]


def tick(
    session: Session,
    *,
    now: dt.datetime,
    settings: Settings,
    queue: TaskQueue,
    limit: int | None = None,
) -> TickOut:
    """One batch in `session`'s transaction: claim up to `limit` (default the batch setting)
    schedules whose fire time is at or before `now`, queue or skip each, advance them."""
    started = time.perf_counter()
    size = limit or settings.schedule_tick_batch
    claimed = PlatformScheduleRepository(session).claim_due(now, size)
    out = TickOut(now=now, claimed=len(claimed), batches=1, queued=[], skipped=[])
    if not claimed:
        out.batches = 0
        return out
    actor = Principal.local_operator(SCHEDULER)
    requests, facts = [], {}
    for row in claimed:
        due = require(row.next_run_at, f"the next run of the schedule of adapter {row.adapter_id}")
        fired = require(row.next_fire_at, f"the fire time of the schedule of {row.adapter_id}")
        offset = int((fired - due).total_seconds())
        missed, next_due = cron.advance(row.cron, row.timezone, due, now)
        next_fire = spread.fire_at(row.adapter_id, next_due, row.spread_seconds)
        facts[row.adapter_id] = (due, offset, missed, next_due, next_fire)
        requests.append(
            RetrainRequest(
                tenant_id=row.tenant_id,
                adapter_id=row.adapter_id,
                mode=row.datasets,
                names=row.dataset_names,
                trigger_ref={
                    "schedule": {"cron": row.cron, "timezone": row.timezone},
                    "due_at": due.isoformat(),
                    "ticked_at": now.isoformat(),
                    "missed_runs": missed,
                    "datasets": row.datasets,
                    "spread_seconds": row.spread_seconds,
                    "offset_seconds": offset,
                },
            )
        )
    plan = bulk.plan(session, requests, trigger="schedule", actor=actor, settings=settings)
    fired_events: dict[uuid.UUID, AuditItem] = {}
    moved: list[dict[str, Any]] = []
    for row in claimed:
        due, offset, missed, next_due, next_fire = facts[row.adapter_id]
        outcome = plan.outcomes[row.adapter_id]
        adapter = plan.adapters.get(row.adapter_id)
        tenant = plan.tenants.get(row.tenant_id)
        label = "/".join(
            (tenant.slug if tenant else str(row.tenant_id), adapter.name if adapter else "?")
        )
        if isinstance(outcome, bulk.Planned):
            job_id: uuid.UUID | None = outcome.job_id
            result, message = ScheduleOutcome.QUEUED, f"training job {job_id} queued"
            out.queued_count += 1
            if len(out.queued) < LISTED:
                out.queued.append(outcome.job_id)
        else:
            job_id, result, message = None, ScheduleOutcome.SKIPPED, outcome[:2000]
            out.skipped_count += 1
            if len(out.skipped) < LISTED:
                out.skipped.append(f"{label}: {outcome}")
        moved.append(
            {
                "adapter_id": row.adapter_id,
                "outcome": result.value,
                "message": message,
                "due": due,
                "ran": now,
                "job_id": job_id,
                "next_run": next_due,
                "next_fire": next_fire,
            }
        )
        fired_events[row.adapter_id] = AuditItem(
            actor=actor,
            action="schedule.fired",
            target_type="adapter",
            target_id=str(row.adapter_id),
            tenant_id=row.tenant_id,
            details={
                "adapter": adapter.name if adapter else None,
                "due_at": due.isoformat(),
                "fired_at": now.isoformat(),
                "offset_seconds": offset,
                "spread_seconds": row.spread_seconds,
                "missed_runs": missed,
                "outcome": result.value,
                "message": message,
                "job_id": str(job_id) if job_id else None,
                "next_run_at": next_due.isoformat(),
                "next_fire_at": next_fire.isoformat(),
            },
        )
        log.debug("schedule.fired", schedule=label, outcome=result.value, missed_runs=missed)
    PlatformScheduleRepository(session).advance(moved)
    bulk.write(session, plan, queue=queue, settings=settings, extra_audit=fired_events)
    out.seconds = round(time.perf_counter() - started, 3)
    log.info(
        "schedules.batch",
        claimed=out.claimed,
        queued=out.queued_count,
        skipped=out.skipped_count,
        seconds=out.seconds,
    )
    return out


def drain(
    sessions: sessionmaker[Session],
    *,
    settings: Settings,
    queue: TaskQueue,
    now: dt.datetime | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TickOut:
    """Batches of `schedule_tick_batch`, each committed (then its jobs are sent) before the
    next, until a batch comes back short (nothing more is due, or what is due is another
    tick's) or `schedule_tick_budget_seconds` is spent. `now`: act as of that time (a hand
    run's --now); default: the clock, read again for each batch."""
    begin, start = clock(), now or utcnow()
    total = TickOut(now=start, claimed=0, queued=[], skipped=[])
    size = settings.schedule_tick_batch
    while True:
        for session in run_unit_of_work(sessions):
            batch = tick(session, now=now or utcnow(), settings=settings, queue=queue, limit=size)
        total.claimed += batch.claimed
        total.batches += batch.batches
        total.queued_count += batch.queued_count
        total.skipped_count += batch.skipped_count
        total.queued += batch.queued[: LISTED - len(total.queued)]
        total.skipped += batch.skipped[: LISTED - len(total.skipped)]
        if batch.claimed < size:
            break
        if clock() - begin >= settings.schedule_tick_budget_seconds:
            total.more_due = True
            break
    total.seconds = round(clock() - begin, 3)
    log.info(
        "schedules.tick",
        claimed=total.claimed,
        queued=total.queued_count,
        skipped=total.skipped_count,
        batches=total.batches,
        seconds=total.seconds,
        more_due=total.more_due,
    )
    return total
