from __future__ import annotations

import builtins
import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from registry.models import Adapter, AdapterVersion, Tenant, TrainingJob, TrainingJobEvent


class TrainingJobRepository:
    """A tenant's jobs; every query is scoped through `_base`."""

    def __init__(self, session: Session, tenant_id: uuid.UUID) -> None:
        self.session, self.tenant_id = session, tenant_id

    def _base(self) -> Select[TrainingJob]:
        return select(TrainingJob).where(TrainingJob.tenant_id == self.tenant_id)

    def get(self, job_id: uuid.UUID, *, lock: bool = False) -> TrainingJob | None:
        stmt = self._base().where(TrainingJob.id == job_id)
        if lock:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return self.session.execute(stmt).scalar_one_or_none()

    def list(
        self, *, status: str | None, adapter_id: uuid.UUID | None, limit: int
    ) -> Sequence[TrainingJob]:
        stmt = self._base()
        if status is not None:
            stmt = stmt.where(TrainingJob.status == status)
        if adapter_id is not None:
            stmt = stmt.where(TrainingJob.adapter_id == adapter_id)
        stmt = stmt.order_by(TrainingJob.created_at.desc(), TrainingJob.id).limit(limit)
        return self.session.execute(stmt).scalars().all()

    def running_for_adapter(
        self, adapter_id: uuid.UUID, *, exclude: uuid.UUID
    ) -> TrainingJob | None:
        stmt = self._base().where(
            TrainingJob.adapter_id == adapter_id,
            TrainingJob.status == "running",
            TrainingJob.id != exclude,
        )
        return self.session.execute(stmt.limit(1)).scalar_one_or_none()

    def events(self, job_id: uuid.UUID) -> Sequence[TrainingJobEvent]:
        stmt = (
            select(TrainingJobEvent)
            .where(TrainingJobEvent.tenant_id == self.tenant_id, TrainingJobEvent.job_id == job_id)
            .order_by(TrainingJobEvent.id)
        )
        return self.session.execute(stmt).scalars().all()

    def add(self, job: TrainingJob) -> None:
        self.session.add(job)

    def add_event(self, event: TrainingJobEvent) -> None:
        self.session.add(event)


class PlatformJobRepository:
    """Across tenants: ops listings, the reaper, and a worker finding the job it was sent."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, job_id: uuid.UUID) -> TrainingJob | None:
        return self.session.get(TrainingJob, job_id)

    def list(
        self, *, status: str | None, tenant_id: uuid.UUID | None, limit: int
    ) -> Sequence[TrainingJob]:
        stmt = select(TrainingJob)
        if status is not None:
            stmt = stmt.where(TrainingJob.status == status)
        if tenant_id is not None:
            stmt = stmt.where(TrainingJob.tenant_id == tenant_id)
        stmt = stmt.order_by(TrainingJob.created_at.desc(), TrainingJob.id).limit(limit)
        return self.session.execute(stmt).scalars().all()

    def expired_leases(self, now: dt.datetime) -> Sequence[TrainingJob]:
        stmt = (
            select(TrainingJob)
            .where(TrainingJob.status == "running", TrainingJob.lease_expires_at < now)
            .with_for_update(skip_locked=True)
        )
        return self.session.execute(stmt).scalars().all()

    def labels(self, jobs: Sequence[TrainingJob]) -> dict[uuid.UUID, tuple[str, str, int]]:
        """job id -> (tenant slug, adapter name, version number), in one query."""
        ids = [j.id for j in jobs]
        if not ids:
            return {}
        stmt = (
            select(TrainingJob.id, Tenant.slug, Adapter.name, AdapterVersion.version)
            .join(Tenant, Tenant.id == TrainingJob.tenant_id)
            .join(Adapter, Adapter.id == TrainingJob.adapter_id)
            .join(AdapterVersion, AdapterVersion.id == TrainingJob.version_id)
            .where(TrainingJob.id.in_(ids))
        )
        out: dict[uuid.UUID, tuple[str, str, int]] = {}
        for job_id, slug, name, number in self.session.execute(stmt):
            out[job_id] = (slug, name, number)
        return out

    def events(self, job_ids: builtins.list[uuid.UUID]) -> Sequence[TrainingJobEvent]:
        stmt = select(TrainingJobEvent).where(TrainingJobEvent.job_id.in_(job_ids))
        return self.session.execute(stmt.order_by(TrainingJobEvent.id)).scalars().all()
