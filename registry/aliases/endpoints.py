from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from registry.adapters.service import adapters
from registry.aliases.repository import alias_rows
from registry.aliases.schemas import ALIAS_PATTERN, AliasAt, AliasEventOut, AliasOut, AliasSet
from registry.aliases.service import aliases
from registry.auth import scopes as sc
from registry.dependencies import (
    SessionDep,
    TenantContext,
    TenantRead,
    tenant_access,
    tenant_read,
)
from registry.errors import NotFound

router = APIRouter(prefix="/v1/tenants/{tenant}/adapters/{name}/aliases", tags=["aliases"])

AdaptersRead = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_READ))]
AdaptersWrite = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_WRITE, write=True))]
AdaptersReadOnce = Annotated[TenantRead, Depends(tenant_read(sc.ADAPTERS_READ))]
_ALIAS_LIST = TypeAdapter(list[AliasOut])
AliasName = Annotated[
    str, Path(pattern=ALIAS_PATTERN, description="lowercase letters, digits, '-', '_'")
]


@router.get("", response_model=list[AliasOut])
async def list_aliases(read: AdaptersReadOnce, name: str) -> Response:
    """Which version each alias names (what resolving an alias reads): a hot read, one statement
    in one thread hop (`TenantRead`), serialized by pydantic."""

    def work(session: Session) -> bytes:
        rows = alias_rows(session, read.visible(), name)
        read.check(rows[0].tenant_id if rows else None)
        if rows[0].adapter_id is None:
            raise NotFound(f"adapter '{name}' not found")  # as `adapters.get`
        found = [
            AliasOut(
                alias=r.alias, version=r.version, updated_by=r.updated_by, updated_at=r.updated_at
            )
            for r in rows
            if r.alias is not None
        ]
        return _ALIAS_LIST.dump_json(found)

    return Response(await read.run(work), media_type="application/json")


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
