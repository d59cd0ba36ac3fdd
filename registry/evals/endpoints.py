from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from registry.adapters.service import adapters
from registry.adapters.versions import versions
from registry.auth import scopes as sc
from registry.dependencies import SessionDep, TenantContext, tenant_access
from registry.evals.schemas import Comparison, DriftCreate, DriftOut, EvalCreate, EvalOut
from registry.evals.service import evals

router = APIRouter(prefix="/v1/tenants/{tenant}/adapters/{name}", tags=["evals and drift"])

AdaptersRead = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_READ))]
AdaptersWrite = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_WRITE, write=True))]


@router.post("/versions/{version}/evals", status_code=201, response_model=EvalOut)
def record_eval(
    ctx: AdaptersWrite, name: str, version: str, body: EvalCreate, session: SessionDep
) -> EvalOut:
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    number = versions.parse_ref(version)
    row = evals.record(
        session, actor=ctx.principal, tenant=ctx.tenant, adapter=adapter, number=number, data=body
    )
    return evals.to_out(row, number)


@router.get("/versions/{version}/evals", response_model=list[EvalOut])
def list_evals(ctx: AdaptersRead, name: str, version: str, session: SessionDep) -> list[EvalOut]:
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    number = versions.parse_ref(version)
    rows = evals.list(session, adapter=adapter, number=number)
    return [evals.to_out(r, number) for r in rows]


@router.get("/versions/{version}/compare", response_model=Comparison)
def compare_versions(
    ctx: AdaptersRead,
    name: str,
    version: str,
    session: SessionDep,
    with_: Annotated[str, Query(alias="with", description="a version (v5) or 'base'")],
) -> Comparison:
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    return evals.compare(session, adapter=adapter, a=versions.parse_ref(version), b=with_)


@router.post("/drift-metrics", status_code=201, response_model=DriftOut)
def record_drift(ctx: AdaptersWrite, name: str, body: DriftCreate, session: SessionDep) -> DriftOut:
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    return evals.record_drift(
        session, actor=ctx.principal, tenant=ctx.tenant, adapter=adapter, data=body
    )


@router.get("/drift-metrics", response_model=list[DriftOut])
def drift_series(
    ctx: AdaptersRead,
    name: str,
    session: SessionDep,
    metric: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> list[DriftOut]:
    """A time series ordered by window end; `since`/`until` bound the window end."""
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    return evals.drift_series(
        session, adapter=adapter, metric=metric, since=since, until=until, limit=limit
    )
