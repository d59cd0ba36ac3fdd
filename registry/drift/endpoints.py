from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from registry.adapters.service import adapters
from registry.auth import scopes as sc
from registry.dependencies import SessionDep, TenantContext, tenant_access
from registry.drift.metrics import drift_metrics
from registry.drift.schemas import (
    DriftCreate,
    DriftOut,
    DriftPolicyIn,
    DriftPolicyOut,
    TrafficIn,
    TrafficOut,
)
from registry.drift.service import drift_policies
from registry.drift.traffic import ingest
from registry.validation_types import AwareDatetime

router = APIRouter(tags=["drift"])
POLICY = "/v1/tenants/{tenant}/adapters/{name}/drift-policy"
METRICS = "/v1/tenants/{tenant}/adapters/{name}/drift-metrics"

Read = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_READ))]
AdaptersWrite = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_WRITE, write=True))]
OpsWrite = Annotated[TenantContext, Depends(tenant_access(sc.RETRAINING_WRITE, write=True))]
TrafficWrite = Annotated[TenantContext, Depends(tenant_access(sc.DATASETS_WRITE, write=True))]


@router.put(POLICY, response_model=DriftPolicyOut)
def set_drift_policy(
    ctx: OpsWrite, name: str, body: DriftPolicyIn, session: SessionDep
) -> DriftPolicyOut:
    """Ops: retrain this adapter when `metric` on its live traffic crosses `threshold`
    (at least `min_samples` prompts in the last `window`; at most once per `cooldown`)."""
    row = drift_policies.put(session, actor=ctx.principal, tenant=ctx.tenant, name=name, data=body)
    return drift_policies.out(session, row, ctx.tenant.slug, name)


@router.get(POLICY, response_model=DriftPolicyOut)
def get_drift_policy(ctx: Read, name: str, session: SessionDep) -> DriftPolicyOut:
    row = drift_policies.get(session, tenant=ctx.tenant, name=name)
    return drift_policies.out(session, row, ctx.tenant.slug, name)


@router.delete(POLICY, status_code=204)
def delete_drift_policy(ctx: OpsWrite, name: str, session: SessionDep) -> Response:
    drift_policies.delete(session, actor=ctx.principal, tenant=ctx.tenant, name=name)
    return Response(status_code=204)


@router.post(METRICS, status_code=201, response_model=DriftOut)
def record_drift(ctx: AdaptersWrite, name: str, body: DriftCreate, session: SessionDep) -> DriftOut:
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    return drift_metrics.record(
        session, actor=ctx.principal, tenant=ctx.tenant, adapter=adapter, data=body
    )


@router.get(METRICS, response_model=list[DriftOut])
def drift_series(
    ctx: Read,
    name: str,
    session: SessionDep,
    metric: str | None = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> list[DriftOut]:
    """A time series ordered by window end; `since`/`until` bound the window end."""
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    return drift_metrics.series(
        session, adapter=adapter, metric=metric, since=since, until=until, limit=limit
    )


@router.post(
    "/v1/tenants/{tenant}/traffic",
    status_code=201,
    response_model=TrafficOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": TrafficIn.model_json_schema()}},
        }
    },
)
async def post_traffic(ctx: TrafficWrite, request: Request, session: SessionDep) -> TrafficOut:
    """Prompts your own inference stack answered with one of your adapters (up to 1000 per
    call, 8 MiB), for drift monitoring. Checked whole: one bad sample stores none."""
    raw = await request.body()  # at most LORAPLEX_MAX_TRAFFIC_BODY_BYTES (registry/bodylimit.py)
    try:
        body = TrafficIn.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False), body=None) from exc
    return await run_in_threadpool(
        ingest, session, actor=ctx.principal, tenant=ctx.tenant, data=body
    )
