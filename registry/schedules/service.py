"""Retrain schedules: one cron per adapter, set by ops, read by the tenant."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Sequence

from sqlalchemy.orm import Session

from registry.adapters.service import adapters
from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.db import utcnow
from registry.errors import Conflict, Inconsistent, NotFound, Unprocessable
from registry.models import Adapter, Tenant, TrainingSchedule
from registry.schedules import cron, spread
from registry.schedules.repository import PlatformScheduleRepository, ScheduleRepository
from registry.schedules.schemas import ScheduleIn, ScheduleOut
from registry.training.selection import select_datasets

UPCOMING = 3


class ScheduleService:
    def put(
        self, session: Session, *, actor: Principal, tenant: Tenant, name: str, data: ScheduleIn
    ) -> TrainingSchedule:
        adapter = adapters.get(session, tenant=tenant, name=name)
        if adapter.archived_at is not None:
            raise Conflict(f"adapter '{adapter.name}' is archived")
        now = utcnow()
        try:
            first = cron.validate(data.cron, data.timezone, now)
            spread.check(data.cron, data.timezone, first, data.spread_seconds)
        except cron.CronError as exc:
            raise Unprocessable(str(exc)) from exc
        if data.dataset_names:
            select_datasets(session, adapter, data.datasets, data.dataset_names)  # 422 if unknown
        repo = ScheduleRepository(session, tenant.id)
        row = repo.get(adapter.id, lock=True)
        keep_due = (
            row is not None
            and row.enabled
            and row.cron == data.cron
            and row.timezone == data.timezone
            and row.next_run_at is not None
        )
        if row is None:
            row = TrainingSchedule(adapter_id=adapter.id, tenant_id=tenant.id)
            repo.add(row)
        row.cron, row.timezone, row.enabled = data.cron, data.timezone, data.enabled
        row.datasets, row.dataset_names = data.datasets, data.dataset_names
        row.spread_seconds = data.spread_seconds
        if not data.enabled:
            row.next_run_at = None
        elif not keep_due:  # an unchanged schedule keeps a due time not yet run
            row.next_run_at = first
        row.next_fire_at = (
            spread.fire_at(adapter.id, row.next_run_at, row.spread_seconds)
            if row.next_run_at is not None
            else None
        )
        row.updated_by = actor.subject
        row.updated_at = now
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="schedule.set",
            target_type="adapter",
            target_id=str(adapter.id),
            tenant_id=tenant.id,
            details={
                "adapter": adapter.name,
                **data.model_dump(),
                "next_run_at": row.next_run_at.isoformat() if row.next_run_at else None,
                "next_fire_at": row.next_fire_at.isoformat() if row.next_fire_at else None,
            },
        )
        return row

    def get(self, session: Session, *, tenant: Tenant, name: str) -> TrainingSchedule:
        adapter = adapters.get(session, tenant=tenant, name=name)
        row = ScheduleRepository(session, tenant.id).get(adapter.id)
        if row is None:
            raise NotFound(f"adapter '{name}' has no retrain schedule")
        return row

    def delete(self, session: Session, *, actor: Principal, tenant: Tenant, name: str) -> None:
        row = self.get(session, tenant=tenant, name=name)
        ScheduleRepository(session, tenant.id).delete(row)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="schedule.delete",
            target_type="adapter",
            target_id=str(row.adapter_id),
            tenant_id=tenant.id,
            details={"adapter": name, "cron": row.cron, "timezone": row.timezone},
        )

    def list_all(
        self, session: Session, *, tenant: Tenant | None, enabled: bool | None, limit: int
    ) -> builtins.list[ScheduleOut]:
        rows = PlatformScheduleRepository(session).list(
            tenant_id=tenant.id if tenant else None, enabled=enabled, limit=limit
        )
        return [self.out(s, slug, name) for s, slug, name in rows]

    def out(self, row: TrainingSchedule, tenant_slug: str, adapter_name: str) -> ScheduleOut:
        upcoming: Sequence[dt.datetime] = []
        if row.enabled and row.next_run_at is not None:
            upcoming = [row.next_run_at] + cron.upcoming(
                row.cron, row.timezone, row.next_run_at, UPCOMING - 1
            )
        return ScheduleOut(
            tenant=tenant_slug,
            adapter=adapter_name,
            cron=row.cron,
            timezone=row.timezone,
            enabled=row.enabled,
            spread_seconds=row.spread_seconds,
            datasets=row.datasets,
            dataset_names=row.dataset_names,
            next_run_at=row.next_run_at,
            next_fire_at=row.next_fire_at,
            upcoming=list(upcoming),
            last_due_at=row.last_due_at,
            last_run_at=row.last_run_at,
            last_job_id=row.last_job_id,
            last_outcome=row.last_outcome,
            last_message=row.last_message,
            updated_by=row.updated_by,
            updated_at=row.updated_at,
        )

    @staticmethod
    def adapter_of(session: Session, row: TrainingSchedule) -> Adapter:
        found = session.get(Adapter, row.adapter_id)
        if found is None or found.tenant_id != row.tenant_id:
            raise Inconsistent(f"the adapter {row.adapter_id} of a schedule is gone")
        return found


schedules = ScheduleService()
