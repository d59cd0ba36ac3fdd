from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, Select, func, select, text
from sqlalchemy.orm import Session

from registry.models import Dataset

# pg_advisory_xact_lock key serializing platform dataset registrations: a fixed 64-bit number
# (the first 8 bytes of sha256(b"loraplex:platform-datasets"), as a signed bigint).
PLATFORM_DATASETS_LOCK = int.from_bytes(
    hashlib.sha256(b"loraplex:platform-datasets").digest()[:8], "big", signed=True
)


class DatasetRepository:
    """Every query is scoped to one owner through `_owned`: a tenant, or with `tenant_id`
    None the platform (ops' datasets, `Dataset.tenant_id IS NULL`). The two never mix: a
    tenant's repository cannot see platform rows, nor the platform's a tenant's."""

    def __init__(self, session: Session, tenant_id: uuid.UUID | None) -> None:
        self.session, self.tenant_id = session, tenant_id

    def _owned(self) -> ColumnElement[bool]:
        if self.tenant_id is None:
            return Dataset.tenant_id.is_(None)
        return Dataset.tenant_id == self.tenant_id

    def _base(self) -> Select[Dataset]:
        return select(Dataset).where(self._owned())

    def lock_platform(self) -> None:
        """Serialize platform registrations (version numbers) until this transaction ends.

        A tenant's are serialized by locking its `tenants` row; the platform has no row of its
        own, and locking a shared one (the audit chain head) would hold every audited write in
        the registry while a large upload is copied into place. A transaction-scoped advisory
        lock on a fixed key blocks exactly the other platform uploads, needs no table, and is
        released on commit or rollback. SQLite (embedded, one writer at a time) has none: the
        unique index on (name, version) refuses a racing duplicate there.
        """
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": PLATFORM_DATASETS_LOCK}
            )

    def get(self, dataset_id: uuid.UUID) -> Dataset | None:
        stmt = self._base().where(Dataset.id == dataset_id)
        return self.session.execute(stmt).scalar_one_or_none()

    def get_version(self, name: str, version: int | None) -> Dataset | None:
        """`name` at `version`, or its latest version with None."""
        if version is None:
            return self.latest(name)
        stmt = self._base().where(Dataset.name == name, Dataset.version == version)
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
        """Bytes the owner occupies: content-addressed, so each distinct digest counts once."""
        distinct = (
            select(Dataset.sha256, func.max(Dataset.bytes).label("bytes"))
            .where(self._owned())
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
