"""The drift page of an adapter: each drift metric over time against the policy's threshold, the
retrains the drift started marked on it, and the recent checks with their outcomes.

Bounded: the newest `MAX_POINTS` metric windows, the newest `MAX_RETRAINS` drift-started jobs.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.adapters.repository import VersionRepository
from registry.adapters.service import adapters
from registry.dependencies import SessionDep, TenantContext
from registry.drift.repository import DriftRepository
from registry.models import Adapter, DriftMetric, TrainingJob
from registry.models.enums import Trigger

from .render import ConsoleRoute, page, svg
from .session import PATH, tenant_page
from .svg import Marker, Series, line_chart

router = APIRouter(prefix=PATH, route_class=ConsoleRoute, include_in_schema=False)

AdaptersRead = Annotated[TenantContext, Depends(tenant_page("adapters:read"))]

MAX_POINTS = 500  # metric windows drawn (the newest)
MAX_RETRAINS = 100
MAX_CHECKS = 50  # rows of the checks table


@dataclass
class Retrain:
    job_id: uuid.UUID
    status: str
    created_at: Any
    version: int | None
    metric: str | None
    metric_id: int | None  # the drift_metrics row that crossed
    value: float | None


def _metrics(session: Session, adapter: Adapter) -> list[Any]:
    stmt = (
        select(
            DriftMetric.id,
            DriftMetric.metric,
            DriftMetric.value,
            DriftMetric.window_start,
            DriftMetric.window_end,
            DriftMetric.sample_size,
            DriftMetric.version_id,
        )
        .where(DriftMetric.tenant_id == adapter.tenant_id, DriftMetric.adapter_id == adapter.id)
        .order_by(DriftMetric.window_end.desc(), DriftMetric.id.desc())
        .limit(MAX_POINTS)
    )
    return list(reversed(session.execute(stmt).all()))


def _retrains(session: Session, adapter: Adapter) -> list[Retrain]:
    stmt = (
        select(
            TrainingJob.id,
            TrainingJob.status,
            TrainingJob.created_at,
            TrainingJob.version_id,
            TrainingJob.trigger_ref,
        )
        .where(
            TrainingJob.tenant_id == adapter.tenant_id,
            TrainingJob.adapter_id == adapter.id,
            TrainingJob.trigger == Trigger.DRIFT,
        )
        .order_by(TrainingJob.created_at.desc())
        .limit(MAX_RETRAINS)
    )
    rows = session.execute(stmt).all()
    numbers = VersionRepository(session, adapter.tenant_id).numbers([r[3] for r in rows])
    out = []
    for job_id, status, created, version_id, ref in rows:
        drift = (ref or {}).get("drift") if isinstance(ref, dict) else None
        drift = drift if isinstance(drift, dict) else {}
        metric_id = drift.get("drift_metric_id")
        value = drift.get("value")
        out.append(
            Retrain(
                job_id=job_id,
                status=str(status),
                created_at=created,
                version=numbers.get(version_id),
                metric=drift.get("metric") if isinstance(drift.get("metric"), str) else None,
                metric_id=metric_id if isinstance(metric_id, int) else None,
                value=float(value) if isinstance(value, int | float) else None,
            )
        )
    return out


@router.get("/t/{tenant}/adapters/{name}/drift", response_class=HTMLResponse)
def drift_page(request: Request, ctx: AdaptersRead, name: str, session: SessionDep) -> HTMLResponse:
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    policy = DriftRepository(session, ctx.tenant.id).policy(adapter.id)
    points = _metrics(session, adapter)
    retrains = _retrains(session, adapter)
    numbers = VersionRepository(session, ctx.tenant.id).numbers(
        list({p.version_id for p in points if p.version_id is not None})
    )
    slug = ctx.tenant.slug
    job_url = f"{PATH}/t/{slug}/jobs/"
    names = sorted({p.metric for p in points} | ({policy.metric} if policy else set()))
    if policy is not None:  # the policy's metric first
        names.sort(key=lambda n: n != policy.metric)
    charts = []
    for metric in names:
        mine = [p for p in points if p.metric == metric]
        watched = policy is not None and policy.metric == metric
        marks = [
            Marker(
                x=_ts(r.created_at),
                label=f"retrain v{r.version}" if r.version else "retrain",
                href=f"{job_url}{r.job_id}",
            )
            for r in retrains
            if r.metric == metric or (r.metric is None and watched)
        ]
        chart = line_chart(
            [Series(metric, [(_ts(p.window_end), p.value) for p in mine])],
            title=f"{metric} per window",
            timed=True,
            y_label=metric,
            threshold=policy.threshold if watched and policy else None,
            markers=marks,
            y_min=0.0,
        )
        charts.append(
            {"metric": metric, "svg": svg(chart), "points": len(mine), "watched": watched}
        )
    crossed_by = {r.metric_id: r for r in retrains if r.metric_id is not None}
    checks = []
    for p in reversed(points[-MAX_CHECKS:]):
        watched = policy is not None and policy.metric == p.metric
        checks.append(
            {
                "id": p.id,
                "metric": p.metric,
                "value": p.value,
                "window_start": p.window_start,
                "window_end": p.window_end,
                "samples": p.sample_size,
                "version": numbers.get(p.version_id) if p.version_id else None,
                "threshold": policy.threshold if watched and policy else None,
                "above": bool(watched and policy and p.value > policy.threshold),
                "retrain": crossed_by.get(p.id),
            }
        )
    return page(
        request,
        "drift.html",
        tenant=ctx.tenant,
        adapter=adapter,
        base_url=f"{PATH}/t/{slug}/adapters/{adapter.name}",
        job_url=job_url,
        policy=policy,
        charts=charts,
        checks=checks,
        retrains=retrains,
        cut=len(points) >= MAX_POINTS,
        max_points=MAX_POINTS,
    )


def _ts(value: dt.datetime) -> float:
    """Epoch seconds; naive values (SQLite) are UTC."""
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
