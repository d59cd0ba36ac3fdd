from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from registry.models import DriftMetric, Eval


class EvalRepository:
    """Evals and drift metrics, scoped to one tenant through the base statements."""

    def __init__(self, session: Session, tenant_id: uuid.UUID) -> None:
        self.session, self.tenant_id = session, tenant_id

    def _evals(self) -> Select[Eval]:
        return select(Eval).where(Eval.tenant_id == self.tenant_id)

    def _drift(self) -> Select[DriftMetric]:
        return select(DriftMetric).where(DriftMetric.tenant_id == self.tenant_id)

    def for_version(self, version_id: uuid.UUID) -> Sequence[Eval]:
        stmt = self._evals().where(Eval.version_id == version_id)
        return self.session.execute(stmt.order_by(Eval.created_at)).scalars().all()

    def drift_series(
        self,
        adapter_id: uuid.UUID,
        *,
        metric: str | None,
        since: dt.datetime | None,
        until: dt.datetime | None,
        limit: int,
    ) -> Sequence[DriftMetric]:
        stmt = self._drift().where(DriftMetric.adapter_id == adapter_id)
        if metric is not None:
            stmt = stmt.where(DriftMetric.metric == metric)
        if since is not None:
            stmt = stmt.where(DriftMetric.window_end >= since)
        if until is not None:
            stmt = stmt.where(DriftMetric.window_end <= until)
        stmt = stmt.order_by(DriftMetric.window_end, DriftMetric.id).limit(limit)
        return self.session.execute(stmt).scalars().all()

    def add(self, row: Eval | DriftMetric) -> None:
        self.session.add(row)
