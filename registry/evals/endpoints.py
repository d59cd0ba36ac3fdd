from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from registry.adapters.resolve import parse_version
from registry.adapters.service import adapters
from registry.auth import scopes as sc
from registry.dependencies import SessionDep, TenantContext, tenant_access
from registry.evals.schemas import Comparison, EvalCreate, EvalOut
from registry.evals.service import evals

router = APIRouter(prefix="/v1/tenants/{tenant}/adapters/{name}", tags=["evals"])

AdaptersRead = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_READ))]
AdaptersWrite = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_WRITE, write=True))]


@router.post("/versions/{version}/evals", status_code=201, response_model=EvalOut)
def record_eval(
    ctx: AdaptersWrite, name: str, version: str, body: EvalCreate, session: SessionDep
) -> EvalOut:
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    number = parse_version(version)
    row = evals.record(
        session, actor=ctx.principal, tenant=ctx.tenant, adapter=adapter, number=number, data=body
    )
    return evals.to_out(row, number)


@router.get("/versions/{version}/evals", response_model=list[EvalOut])
def list_evals(ctx: AdaptersRead, name: str, version: str, session: SessionDep) -> list[EvalOut]:
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    number = parse_version(version)
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
    return evals.compare(session, adapter=adapter, a=parse_version(version), b=with_)
