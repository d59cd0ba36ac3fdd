from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, Select, func, select, text
from sqlalchemy.orm import Session

from registry.models import EvalSuite

# pg_advisory_xact_lock key serializing platform suite registrations (version numbers): the
# first 8 bytes of sha256(b"loraplex:platform-eval-suites"), as a signed bigint.
PLATFORM_SUITES_LOCK = int.from_bytes(
    hashlib.sha256(b"loraplex:platform-eval-suites").digest()[:8], "big", signed=True
)


class EvalSuiteRepository:
    """Every query is scoped to one owner through `_owned`: a tenant, or with `tenant_id` None
    the platform (ops' suites, `EvalSuite.tenant_id IS NULL`). The two never mix."""

    def __init__(self, session: Session, tenant_id: uuid.UUID | None) -> None:
        self.session, self.tenant_id = session, tenant_id

    def _owned(self) -> ColumnElement[bool]:
        if self.tenant_id is None:
            return EvalSuite.tenant_id.is_(None)
        return EvalSuite.tenant_id == self.tenant_id

    def _base(self) -> Select[EvalSuite]:
        return select(EvalSuite).where(self._owned())

    def lock_platform(self) -> None:
        """Serialize platform registrations until this transaction ends (a tenant's are
        serialized by its `tenants` row lock; the platform has no row). SQLite has one writer
        at a time; the unique index refuses a racing duplicate there."""
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": PLATFORM_SUITES_LOCK}
            )

    def get(self, suite_id: uuid.UUID) -> EvalSuite | None:
        stmt = self._base().where(EvalSuite.id == suite_id)
        return self.session.execute(stmt).scalar_one_or_none()

    def get_version(self, name: str, version: int | None) -> EvalSuite | None:
        """`name` at `version`, or its latest version with None."""
        if version is None:
            return self.latest(name)
        stmt = self._base().where(EvalSuite.name == name, EvalSuite.version == version)
        return self.session.execute(stmt).scalar_one_or_none()

    def list(self, *, name: str | None, limit: int, offset: int) -> Sequence[EvalSuite]:
        stmt = self._base()
        if name is not None:
            stmt = stmt.where(EvalSuite.name == name)
        stmt = stmt.order_by(EvalSuite.created_at.desc(), EvalSuite.version.desc())
        return self.session.execute(stmt.limit(limit).offset(offset)).scalars().all()

    def latest(self, name: str) -> EvalSuite | None:
        stmt = self._base().where(EvalSuite.name == name).order_by(EvalSuite.version.desc())
        return self.session.execute(stmt.limit(1)).scalar_one_or_none()

    def stored_bytes(self) -> int:
        """Bytes the owner's suites occupy: each distinct digest counts once."""
        distinct = (
            select(EvalSuite.sha256, func.max(EvalSuite.bytes).label("bytes"))
            .where(self._owned())
            .group_by(EvalSuite.sha256)
            .subquery()
        )
        total = self.session.execute(select(func.coalesce(func.sum(distinct.c.bytes), 0)))
        return int(total.scalar_one())

    def has_digest(self, sha256: str) -> bool:
        stmt = self._base().where(EvalSuite.sha256 == sha256).limit(1)
        return self.session.execute(stmt).first() is not None

    def add(self, suite: EvalSuite) -> None:
        self.session.add(suite)
