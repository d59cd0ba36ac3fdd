from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select, text, update
from sqlalchemy.orm import Session

from registry.db import utcnow
from registry.models import Adapter, Tenant, TrainingJob, TrainingSchedule
from registry.models.enums import JobStatus

UNFINISHED = (JobStatus.QUEUED, JobStatus.RUNNING)
FIELDS = ("adapter_id", "outcome", "message", "due", "ran", "job_id", "next_run", "next_fire")
ADVANCE = text(
    """
    UPDATE training_schedules AS s
    SET last_outcome = v.outcome, last_message = v.message, last_due_at = v.due,
        last_run_at = v.ran, last_job_id = v.job_id, next_run_at = v.next_run,
        next_fire_at = v.next_fire, updated_at = :now
    FROM unnest(
        CAST(:adapter_id AS uuid[]), CAST(:outcome AS varchar[]), CAST(:message AS varchar[]),
        CAST(:due AS timestamptz[]), CAST(:ran AS timestamptz[]), CAST(:job_id AS uuid[]),
        CAST(:next_run AS timestamptz[]), CAST(:next_fire AS timestamptz[])
    ) AS v(adapter_id, outcome, message, due, ran, job_id, next_run, next_fire)
    WHERE s.adapter_id = v.adapter_id
    """
)


class ScheduleRepository:
    """One tenant's schedules: every query filters on the tenant."""

    def __init__(self, session: Session, tenant_id: uuid.UUID) -> None:
        self.session, self.tenant_id = session, tenant_id

    def _base(self) -> Select[TrainingSchedule]:
        return select(TrainingSchedule).where(TrainingSchedule.tenant_id == self.tenant_id)

    def get(self, adapter_id: uuid.UUID, *, lock: bool = False) -> TrainingSchedule | None:
        stmt = self._base().where(TrainingSchedule.adapter_id == adapter_id)
        if lock:
            stmt = stmt.with_for_update()
        return self.session.execute(stmt).scalar_one_or_none()

    def add(self, schedule: TrainingSchedule) -> None:
        self.session.add(schedule)

    def delete(self, schedule: TrainingSchedule) -> None:
        self.session.delete(schedule)

    def unfinished_job(self, adapter_id: uuid.UUID) -> TrainingJob | None:
        stmt = (
            select(TrainingJob)
            .where(
                TrainingJob.tenant_id == self.tenant_id,
                TrainingJob.adapter_id == adapter_id,
                TrainingJob.status.in_(UNFINISHED),
            )
            .limit(1)
        )
        return self.session.execute(stmt).scalar_one_or_none()


class PlatformScheduleRepository:
    """Across tenants: ops listings and the tick (which then works per tenant)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def claim_due(self, now: dt.datetime, limit: int) -> Sequence[TrainingSchedule]:
        """Schedules whose fire time has come, locked until commit. SKIP LOCKED: a concurrent
        tick passes over the rows this one holds instead of waiting for them, and once this one
        commits they are no longer due. (SQLite ignores the clause; it has a single writer.)"""
        stmt = (
            select(TrainingSchedule)
            .where(TrainingSchedule.enabled.is_(True), TrainingSchedule.next_fire_at <= now)
            .order_by(TrainingSchedule.next_fire_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return self.session.execute(stmt).scalars().all()

    def advance(self, rows: Sequence[dict[str, Any]]) -> None:
        """Record a batch's runs and move the schedules forward: per row `adapter_id`,
        `outcome`, `message`, `due`, `ran`, `job_id`, `next_run`, `next_fire`. PostgreSQL: one
        UPDATE ... FROM unnest(arrays) (eight parameters, whatever the batch size); SQLite:
        an executemany."""
        if not rows:
            return
        now = utcnow()
        if self.session.get_bind().dialect.name == "postgresql":
            arrays = {c: [r[c] for r in rows] for c in FIELDS}
            self.session.execute(ADVANCE, {**arrays, "now": now})
            return
        s = TrainingSchedule
        self.session.execute(
            update(s).execution_options(synchronize_session=False),
            [
                {
                    "adapter_id": r["adapter_id"],
                    "last_outcome": r["outcome"],
                    "last_message": r["message"],
                    "last_due_at": r["due"],
                    "last_run_at": r["ran"],
                    "last_job_id": r["job_id"],
                    "next_run_at": r["next_run"],
                    "next_fire_at": r["next_fire"],
                    "updated_at": now,
                }
                for r in rows
            ],
        )

    def list(
        self, *, tenant_id: uuid.UUID | None, enabled: bool | None, limit: int
    ) -> Sequence[tuple[TrainingSchedule, str, str]]:
        stmt = (
            select(TrainingSchedule, Tenant.slug, Adapter.name)
            .join(Tenant, Tenant.id == TrainingSchedule.tenant_id)
            .join(Adapter, Adapter.id == TrainingSchedule.adapter_id)
        )
        if tenant_id is not None:
            stmt = stmt.where(TrainingSchedule.tenant_id == tenant_id)
        if enabled is not None:
            stmt = stmt.where(TrainingSchedule.enabled.is_(enabled))
        stmt = stmt.order_by(TrainingSchedule.next_fire_at.asc().nulls_last(), Tenant.slug)
        return [(s, slug, name) for s, slug, name in self.session.execute(stmt.limit(limit))]
