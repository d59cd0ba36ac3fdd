from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from registry.models import Adapter, DriftMetric, DriftPolicy, Tenant, TrafficSample


class DriftRepository:
    """One tenant's drift policies, traffic samples and metrics."""

    def __init__(self, session: Session, tenant_id: uuid.UUID) -> None:
        self.session, self.tenant_id = session, tenant_id

    def _policies(self) -> Select[DriftPolicy]:
        return select(DriftPolicy).where(DriftPolicy.tenant_id == self.tenant_id)

    def _samples(self) -> Select[TrafficSample]:
        return select(TrafficSample).where(TrafficSample.tenant_id == self.tenant_id)

    def _metrics(self) -> Select[DriftMetric]:
        return select(DriftMetric).where(DriftMetric.tenant_id == self.tenant_id)

    def policy(self, adapter_id: uuid.UUID, *, lock: bool = False) -> DriftPolicy | None:
        stmt = self._policies().where(DriftPolicy.adapter_id == adapter_id)
        if lock:
            stmt = stmt.with_for_update()
        return self.session.execute(stmt).scalar_one_or_none()

    def add(self, row: DriftPolicy | TrafficSample | DriftMetric) -> None:
        self.session.add(row)

    def delete(self, row: DriftPolicy) -> None:
        self.session.delete(row)

    def window(
        self, adapter_id: uuid.UUID, start: dt.datetime, end: dt.datetime, limit: int
    ) -> list[tuple[uuid.UUID | None, dict[str, Any]]]:
        """(version that answered, record) of the newest `limit` samples in [start, end)."""
        stmt = (
            self._samples()
            .with_only_columns(TrafficSample.version_id, TrafficSample.record)
            .where(
                TrafficSample.adapter_id == adapter_id,
                TrafficSample.created_at >= start,
                TrafficSample.created_at < end,
            )
            .order_by(TrafficSample.created_at.desc())
            .limit(limit)
        )
        return [(v, r) for v, r in self.session.execute(stmt)]

    def latest_metric(
        self, adapter_id: uuid.UUID, metric: str, version_id: uuid.UUID
    ) -> DriftMetric | None:
        stmt = (
            self._metrics()
            .where(
                DriftMetric.adapter_id == adapter_id,
                DriftMetric.metric == metric,
                DriftMetric.version_id == version_id,
            )
            .order_by(DriftMetric.window_end.desc(), DriftMetric.id.desc())
            .limit(1)
        )
        return self.session.execute(stmt).scalar_one_or_none()

    def metric_series(
        self,
        adapter_id: uuid.UUID,
        *,
        metric: str | None,
        since: dt.datetime | None,
        until: dt.datetime | None,
        limit: int,
    ) -> Sequence[DriftMetric]:
        """Ordered by window end; `since`/`until` bound the window end."""
        stmt = self._metrics().where(DriftMetric.adapter_id == adapter_id)
        if metric is not None:
            stmt = stmt.where(DriftMetric.metric == metric)
        if since is not None:
            stmt = stmt.where(DriftMetric.window_end >= since)
        if until is not None:
            stmt = stmt.where(DriftMetric.window_end <= until)
        stmt = stmt.order_by(DriftMetric.window_end, DriftMetric.id).limit(limit)
        return self.session.execute(stmt).scalars().all()


def enabled_policies(session: Session) -> Sequence[tuple[uuid.UUID, uuid.UUID, int]]:
    """(tenant id, adapter id, window seconds) of every enabled policy on a live adapter."""
    stmt = (
        select(DriftPolicy.tenant_id, DriftPolicy.adapter_id, DriftPolicy.window_seconds)
        .join(Adapter, Adapter.id == DriftPolicy.adapter_id)
        .join(Tenant, Tenant.id == DriftPolicy.tenant_id)
        .where(
            DriftPolicy.enabled.is_(True),
            Adapter.archived_at.is_(None),
            Tenant.disabled_at.is_(None),
        )
        .order_by(DriftPolicy.tenant_id, DriftPolicy.adapter_id)
    )
    return [(t, a, w) for t, a, w in session.execute(stmt)]
