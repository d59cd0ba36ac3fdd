from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from registry.adapters.service import adapters
from registry.auth import scopes as sc
from registry.dependencies import SessionDep, TenantContext, tenant_access
from registry.splits.schemas import SplitEventOut, SplitOut, SplitSet
from registry.splits.service import splits

router = APIRouter(
    prefix="/v1/tenants/{tenant}/adapters/{name}/traffic-split", tags=["traffic splits"]
)

AdaptersRead = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_READ))]
AdaptersWrite = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_WRITE, write=True))]


@router.get("", response_model=SplitOut)
def get_split(ctx: AdaptersRead, name: str, session: SessionDep) -> SplitOut:
    """The adapter's traffic split; with none, production alone (`active` false)."""
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    return splits.get(session, tenant=ctx.tenant, adapter=adapter)


@router.put("", response_model=SplitOut)
def set_split(ctx: AdaptersWrite, name: str, body: SplitSet, session: SessionDep) -> SplitOut:
    """Share production's traffic between versions, sticky per end user; each key (alias or
    'vN') is resolved to a ready version now. Recorded with its reason, audited."""
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    return splits.set(
        session,
        actor=ctx.principal,
        tenant=ctx.tenant,
        adapter=adapter,
        weights=body.weights,
        reason=body.reason,
        rollback=body.rollback,
    )


@router.delete("", status_code=204)
def clear_split(
    ctx: AdaptersWrite,
    name: str,
    session: SessionDep,
    reason: Annotated[str, Query(max_length=2000)] = "",
) -> Response:
    """Back to production only (nothing recorded when there was no split)."""
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    splits.clear(session, actor=ctx.principal, tenant=ctx.tenant, adapter=adapter, reason=reason)
    return Response(status_code=204)


@router.get("/history", response_model=list[SplitEventOut])
def split_history(ctx: AdaptersRead, name: str, session: SessionDep) -> list[SplitEventOut]:
    """Every change, oldest first: who, when, why, and whether the rollback check made it."""
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    rows = splits.history(session, tenant=ctx.tenant, adapter=adapter)
    return [SplitEventOut.model_validate(r) for r in rows]
