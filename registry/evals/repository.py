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

    def add(self, row: Eval) -> None:
        self.session.add(row)
