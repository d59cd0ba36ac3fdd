from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from registry.adapters.service import adapters
from registry.aliases.schemas import ALIAS_PATTERN, AliasAt, AliasEventOut, AliasOut, AliasSet
from registry.aliases.service import aliases
from registry.auth import scopes as sc
from registry.dependencies import SessionDep, TenantContext, tenant_access

router = APIRouter(prefix="/v1/tenants/{tenant}/adapters/{name}/aliases", tags=["aliases"])

AdaptersRead = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_READ))]
AdaptersWrite = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_WRITE, write=True))]
AliasName = Annotated[
    str, Path(pattern=ALIAS_PATTERN, description="lowercase letters, digits, '-', '_'")
]


@router.get("", response_model=list[AliasOut])
def list_aliases(ctx: AdaptersRead, name: str, session: SessionDep) -> list[AliasOut]:
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    return aliases.list(session, tenant=ctx.tenant, adapter=adapter)


@router.put("/{alias}", response_model=AliasOut)
def set_alias(
    ctx: AdaptersWrite, name: str, alias: AliasName, body: AliasSet, session: SessionDep
) -> AliasOut:
    """Point the alias at a ready version; the move is recorded with its reason."""
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    return aliases.set(
        session,
        actor=ctx.principal,
        tenant=ctx.tenant,
        adapter=adapter,
        alias=alias,
        number=body.version,
        reason=body.reason,
    )


@router.delete("/{alias}", status_code=204)
def delete_alias(
    ctx: AdaptersWrite, name: str, alias: str, session: SessionDep, reason: str = ""
) -> Response:
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    aliases.delete(
        session, actor=ctx.principal, tenant=ctx.tenant, adapter=adapter, alias=alias, reason=reason
    )
    return Response(status_code=204)


@router.get("/{alias}/history", response_model=list[AliasEventOut])
def alias_history(
    ctx: AdaptersRead, name: str, alias: str, session: SessionDep
) -> list[AliasEventOut]:
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    rows = aliases.history(session, tenant=ctx.tenant, adapter=adapter, alias=alias)
    return [AliasEventOut.model_validate(r) for r in rows]


@router.get("/{alias}/at", response_model=AliasAt)
def alias_at(
    ctx: AdaptersRead,
    name: str,
    alias: str,
    session: SessionDep,
    time: Annotated[dt.datetime, Query(description="ISO 8601; naive means UTC")],
) -> AliasAt:
    """Which version the alias pointed to at `time`."""
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    return aliases.at(session, tenant=ctx.tenant, adapter=adapter, alias=alias, when=time)
