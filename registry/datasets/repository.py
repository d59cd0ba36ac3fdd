from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from registry.models import Dataset


class DatasetRepository:
    """Every query is scoped to one tenant through `_base`."""

    def __init__(self, session: Session, tenant_id: uuid.UUID) -> None:
        self.session, self.tenant_id = session, tenant_id

    def _base(self) -> Select[Dataset]:
        return select(Dataset).where(Dataset.tenant_id == self.tenant_id)

    def get(self, dataset_id: uuid.UUID) -> Dataset | None:
        stmt = self._base().where(Dataset.id == dataset_id)
        return self.session.execute(stmt).scalar_one_or_none()

    def list(self, *, name: str | None, limit: int, offset: int) -> Sequence[Dataset]:
        stmt = self._base()
        if name is not None:
            stmt = stmt.where(Dataset.name == name)
        stmt = stmt.order_by(Dataset.created_at.desc(), Dataset.version.desc())
        return self.session.execute(stmt.limit(limit).offset(offset)).scalars().all()

    def latest(self, name: str) -> Dataset | None:
        stmt = self._base().where(Dataset.name == name).order_by(Dataset.version.desc())
        return self.session.execute(stmt.limit(1)).scalar_one_or_none()

    def stored_bytes(self) -> int:
        """Bytes the tenant occupies: content-addressed, so each distinct digest counts once."""
        distinct = (
            select(Dataset.sha256, func.max(Dataset.bytes).label("bytes"))
            .where(Dataset.tenant_id == self.tenant_id)
            .group_by(Dataset.sha256)
            .subquery()
        )
        total = self.session.execute(select(func.coalesce(func.sum(distinct.c.bytes), 0)))
        return int(total.scalar_one())

    def has_digest(self, sha256: str) -> bool:
        stmt = self._base().where(Dataset.sha256 == sha256).limit(1)
        return self.session.execute(stmt).first() is not None

    def add(self, dataset: Dataset) -> None:
        self.session.add(dataset)
