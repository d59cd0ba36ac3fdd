from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from registry.models import Eval


class EvalRepository:
    """Evals, scoped to one tenant through the base statement."""

    def __init__(self, session: Session, tenant_id: uuid.UUID) -> None:
        self.session, self.tenant_id = session, tenant_id

    def _evals(self) -> Select[Eval]:
        return select(Eval).where(Eval.tenant_id == self.tenant_id)

    def for_version(self, version_id: uuid.UUID) -> Sequence[Eval]:
        stmt = self._evals().where(Eval.version_id == version_id)
        return self.session.execute(stmt.order_by(Eval.created_at)).scalars().all()

    def latest_on_suite(
        self,
        *,
        adapter_id: uuid.UUID,
        suite_id: uuid.UUID,
        subject: str,
        version_id: uuid.UUID | None = None,
    ) -> Eval | None:
        """The newest score of `subject` on one suite version: a version's (`version_id`), or
        the base model's as scored for this adapter."""
        stmt = self._evals().where(
            Eval.adapter_id == adapter_id, Eval.suite_id == suite_id, Eval.subject == subject
        )
        if version_id is not None:
            stmt = stmt.where(Eval.version_id == version_id)
        stmt = stmt.order_by(Eval.created_at.desc()).limit(1)
        return self.session.execute(stmt).scalar_one_or_none()

    def on_suite(self, *, adapter_id: uuid.UUID, suite_id: uuid.UUID) -> Sequence[Eval]:
        """Every score on one suite version for this adapter, oldest first."""
        stmt = self._evals().where(Eval.adapter_id == adapter_id, Eval.suite_id == suite_id)
        return self.session.execute(stmt.order_by(Eval.created_at)).scalars().all()

    def add(self, row: Eval) -> None:
        self.session.add(row)
