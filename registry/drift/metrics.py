"""Drift metrics: one value per (adapter, metric, window), posted by a tenant's own monitoring
or computed by the drift pass (workers/drift.py). Policies read the latest one (service.py).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from registry.adapters.repository import VersionRepository
from registry.adapters.versions import versions
from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.drift.repository import DriftRepository
from registry.drift.schemas import DriftCreate, DriftOut
from registry.models import Adapter, DriftMetric, Tenant


class DriftMetricService:
    def record(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        adapter: Adapter,
        data: DriftCreate,
    ) -> DriftOut:
        version_id = None
        if data.version is not None:
            version_id = versions.get(session, adapter=adapter, number=data.version).id
        row = DriftMetric(
            tenant_id=tenant.id,
            adapter_id=adapter.id,
            version_id=version_id,
            metric=data.metric,
            value=data.value,
            window_start=data.window_start,
            window_end=data.window_end,
            sample_size=data.sample_size,
            details=data.details,
            created_by=actor.subject,
        )
        DriftRepository(session, tenant.id).add(row)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="drift_metric.create",
            target_type="drift_metric",
            target_id=str(row.id),
            tenant_id=tenant.id,
            details={
                "adapter": adapter.name,
                "metric": data.metric,
                "value": data.value,
                "version": data.version,
                "sample_size": data.sample_size,
            },
        )
        return self.out(row, data.version)

    def series(
        self,
        session: Session,
        *,
        adapter: Adapter,
        metric: str | None,
        since: dt.datetime | None,
        until: dt.datetime | None,
        limit: int,
    ) -> list[DriftOut]:
        rows = DriftRepository(session, adapter.tenant_id).metric_series(
            adapter.id, metric=metric, since=since, until=until, limit=limit
        )
        ids = [r.version_id for r in rows if r.version_id]
        numbers = VersionRepository(session, adapter.tenant_id).numbers(ids)
        return [self.out(r, numbers.get(r.version_id) if r.version_id else None) for r in rows]

    @staticmethod
    def out(row: DriftMetric, number: int | None) -> DriftOut:
        return DriftOut(
            metric=row.metric,
            value=row.value,
            window_start=row.window_start,
            window_end=row.window_end,
            sample_size=row.sample_size,
            version=number,
            details=row.details,
            created_at=row.created_at,
        )


drift_metrics = DriftMetricService()
