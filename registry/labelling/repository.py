from __future__ import annotations

import builtins
import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Select, String, and_, cast, or_, select, update
from sqlalchemy.orm import Session

from registry.models import Adapter, Feedback, LabellingJob, Teacher, Tenant, TrafficSample

ACTIVE = ("queued", "running")


class LabellingJobRepository:
    """A tenant's labelling jobs; every query is scoped through `_base`."""

    def __init__(self, session: Session, tenant_id: uuid.UUID) -> None:
        self.session, self.tenant_id = session, tenant_id

    def _base(self) -> Select[LabellingJob]:
        return select(LabellingJob).where(LabellingJob.tenant_id == self.tenant_id)

    def get(self, job_id: uuid.UUID, *, lock: bool = False) -> LabellingJob | None:
        stmt = self._base().where(LabellingJob.id == job_id)
        if lock:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return self.session.execute(stmt).scalar_one_or_none()

    def list(
        self, *, adapter_id: uuid.UUID | None, status: str | None, limit: int
    ) -> Sequence[LabellingJob]:
        stmt = self._base()
        if adapter_id is not None:
            stmt = stmt.where(LabellingJob.adapter_id == adapter_id)
        if status is not None:
            stmt = stmt.where(LabellingJob.status == status)
        stmt = stmt.order_by(LabellingJob.created_at.desc(), LabellingJob.id).limit(limit)
        return self.session.execute(stmt).scalars().all()

    def active_for_adapter(self, adapter_id: uuid.UUID) -> LabellingJob | None:
        stmt = self._base().where(
            LabellingJob.adapter_id == adapter_id, LabellingJob.status.in_(ACTIVE)
        )
        return self.session.execute(stmt.limit(1)).scalar_one_or_none()

    def add(self, job: LabellingJob) -> None:
        self.session.add(job)


class PlatformLabellingRepository:
    """Across tenants: a worker finding the job it was sent, and the reaper."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, job_id: uuid.UUID, *, lock: bool = False) -> LabellingJob | None:
        stmt = select(LabellingJob).where(LabellingJob.id == job_id)
        if lock:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return self.session.execute(stmt).scalar_one_or_none()

    def claim(self, job_id: uuid.UUID, *, worker: str, now: dt.datetime) -> bool:
        """queued -> running for this worker, once (a second delivery finds it taken)."""
        stmt = (
            update(LabellingJob)
            .where(LabellingJob.id == job_id, LabellingJob.status == "queued")
            .values(status="running", worker=worker, started_at=now, heartbeat_at=now)
        )
        return bool(self.session.execute(stmt).rowcount)  # type: ignore[attr-defined]

    def stale_running(self, before: dt.datetime) -> Sequence[LabellingJob]:
        stmt = (
            select(LabellingJob)
            .where(LabellingJob.status == "running", LabellingJob.heartbeat_at < before)
            .with_for_update(skip_locked=True)
        )
        return self.session.execute(stmt).scalars().all()

    def queued_before(self, when: dt.datetime) -> Sequence[LabellingJob]:
        stmt = select(LabellingJob).where(
            LabellingJob.status == "queued", LabellingJob.updated_at < when
        )
        return self.session.execute(stmt).scalars().all()

    def labels(self, jobs: Sequence[LabellingJob]) -> dict[uuid.UUID, tuple[str, str, str]]:
        """job id -> (tenant slug, adapter name, teacher name), in one query."""
        ids: builtins.list[uuid.UUID] = [j.id for j in jobs]
        if not ids:
            return {}
        stmt = (
            select(LabellingJob.id, Tenant.slug, Adapter.name, Teacher.name)
            .join(Tenant, Tenant.id == LabellingJob.tenant_id)
            .join(Adapter, Adapter.id == LabellingJob.adapter_id)
            .join(Teacher, Teacher.id == LabellingJob.teacher_id)
            .where(LabellingJob.id.in_(ids))
        )
        return {row[0]: (row[1], row[2], row[3]) for row in self.session.execute(stmt)}


def _has_correction() -> Any:
    # JSON null and SQL NULL both mean "no correction"
    return and_(Feedback.correction.is_not(None), cast(Feedback.correction, String) != "null")


class TrafficPrompts:
    """One tenant's sampled prompts of an adapter, newest first, for a labelling job."""

    def __init__(self, session: Session, tenant_id: uuid.UUID) -> None:
        self.session, self.tenant_id = session, tenant_id

    def records(
        self,
        *,
        adapter_id: uuid.UUID,
        since: dt.datetime,
        until: dt.datetime,
        version_id: uuid.UUID | None,
        skip_answered: bool,
        limit: int,
    ) -> Iterator[dict[str, Any]]:
        stmt = select(TrafficSample.record).where(
            TrafficSample.tenant_id == self.tenant_id,
            TrafficSample.adapter_id == adapter_id,
            TrafficSample.created_at >= since,
            TrafficSample.created_at < until,
        )
        if version_id is not None:
            stmt = stmt.where(TrafficSample.version_id == version_id)
        if skip_answered:
            answered = select(Feedback.request_id).where(
                Feedback.tenant_id == self.tenant_id,
                Feedback.adapter_id == adapter_id,
                or_(Feedback.rating == 1, _has_correction()),
            )
            stmt = stmt.where(
                or_(TrafficSample.request_id.is_(None), TrafficSample.request_id.not_in(answered))
            )
        stmt = stmt.order_by(TrafficSample.created_at.desc(), TrafficSample.id.desc()).limit(limit)
        yield from self.session.execute(stmt.execution_options(yield_per=500)).scalars()
