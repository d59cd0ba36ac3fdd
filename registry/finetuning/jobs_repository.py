"""A tenant's fine-tuning jobs and files as the jobs API reads them; every query is
tenant-scoped."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from registry.finetuning import ids
from registry.models import (
    FineTuningJob,
    TenantFile,
)


class FineTuningJobRepository:
    """A tenant's fine-tuning jobs and files; every query is scoped through `_base`."""

    def __init__(self, session: Session, tenant_id: uuid.UUID) -> None:
        self.session, self.tenant_id = session, tenant_id

    def _base(self) -> Select[FineTuningJob]:
        return select(FineTuningJob).where(FineTuningJob.tenant_id == self.tenant_id)

    def get(self, job_id: uuid.UUID) -> FineTuningJob | None:
        stmt = self._base().where(FineTuningJob.id == job_id)
        return self.session.execute(stmt).scalar_one_or_none()

    def name_taken(self, name: str) -> bool:
        stmt = self._base().where(FineTuningJob.fine_tuned_model == name)
        return self.session.execute(stmt.limit(1)).first() is not None

    def page(
        self, *, after: FineTuningJob | None, limit: int, metadata: dict[str, str]
    ) -> Sequence[FineTuningJob]:
        """Newest first; `after`: only jobs older than that one."""
        stmt = self._base()
        if after is not None:
            stmt = stmt.where(
                or_(
                    FineTuningJob.created_at < after.created_at,
                    and_(FineTuningJob.created_at == after.created_at, FineTuningJob.id < after.id),
                )
            )
        for key, value in metadata.items():
            stmt = stmt.where(FineTuningJob.job_metadata[key].as_string() == value)
        stmt = stmt.order_by(FineTuningJob.created_at.desc(), FineTuningJob.id.desc())
        return self.session.execute(stmt.limit(limit)).scalars().all()

    def file(self, file_id: uuid.UUID) -> TenantFile | None:
        stmt = select(TenantFile).where(
            TenantFile.tenant_id == self.tenant_id,
            TenantFile.id == file_id,
            TenantFile.deleted_at.is_(None),
        )
        return self.session.execute(stmt).scalar_one_or_none()

    def result_files(self, job_ids: builtins.list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
        out: dict[uuid.UUID, list[str]] = {}
        if not job_ids:
            return out
        stmt = (
            select(TenantFile.job_id, TenantFile.id)
            .where(
                TenantFile.tenant_id == self.tenant_id,
                TenantFile.job_id.in_(job_ids),
                TenantFile.purpose == "fine-tune-results",
                TenantFile.deleted_at.is_(None),
            )
            .order_by(TenantFile.created_at)
        )
        for job_id, file_id in self.session.execute(stmt):
            if job_id is not None:
                out.setdefault(job_id, []).append(ids.encode(ids.FILE, file_id))
        return out

    def add(self, row: FineTuningJob) -> None:
        self.session.add(row)
