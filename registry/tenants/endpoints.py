from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from registry.auth import scopes as sc
from registry.auth.principal import Principal
from registry.auth.service import clients
from registry.dependencies import SessionDep, TenantContext, require_scope, tenant_access
from registry.tenants.schemas import (
    ClientCreate,
    ClientCreated,
    ClientOut,
    TenantCreate,
    TenantList,
    TenantOut,
    TenantUpdate,
    TrafficLogging,
)
from registry.tenants.service import tenants
from registry.validation_types import INT64_MAX

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])

TenantsWrite = Annotated[Principal, Depends(require_scope(sc.TENANTS_WRITE))]
TenantsRead = Annotated[Principal, Depends(require_scope(sc.TENANTS_READ))]
TenantRead = Annotated[TenantContext, Depends(tenant_access(sc.TENANTS_READ))]
TenantAdmin = Annotated[TenantContext, Depends(tenant_access(sc.TENANTS_WRITE))]
TenantDataWrite = Annotated[TenantContext, Depends(tenant_access(sc.DATASETS_WRITE, write=True))]


@router.post("", status_code=201, response_model=TenantOut)
def create_tenant(
    body: TenantCreate, principal: TenantsWrite, session: SessionDep, request: Request
) -> TenantOut:
    tenant = tenants.create(
        session, actor=principal, data=body, settings=request.app.state.settings
    )
    return TenantOut.model_validate(tenant)


@router.get("", response_model=TenantList)
def list_tenants(
    principal: TenantsRead,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> TenantList:
    rows = tenants.list(session, principal=principal, limit=limit, offset=offset)
    return TenantList(items=[TenantOut.model_validate(t) for t in rows], limit=limit, offset=offset)


@router.get("/{tenant}", response_model=TenantOut)
def get_tenant(ctx: TenantRead) -> TenantOut:
    return TenantOut.model_validate(ctx.tenant)


@router.patch("/{tenant}", response_model=TenantOut)
def update_tenant(ctx: TenantAdmin, body: TenantUpdate, session: SessionDep) -> TenantOut:
    tenant = tenants.update(session, actor=ctx.principal, tenant=ctx.tenant, data=body)
    return TenantOut.model_validate(tenant)


@router.put("/{tenant}/traffic-logging", response_model=TenantOut)
def set_traffic_logging(
    ctx: TenantDataWrite, body: TrafficLogging, session: SessionDep
) -> TenantOut:
    """Opt the tenant's prompts in or out of the traffic log (sampled by the gateway, used for
    drift). The tenant itself may change it; the gateway follows within its auth cache time."""
    tenant = tenants.set_traffic_logging(
        session, actor=ctx.principal, tenant=ctx.tenant, enabled=body.enabled
    )
    return TenantOut.model_validate(tenant)


@router.post("/{tenant}/disable", response_model=TenantOut)
def disable_tenant(ctx: TenantAdmin, session: SessionDep) -> TenantOut:
    tenant = tenants.set_disabled(session, actor=ctx.principal, tenant=ctx.tenant, disabled=True)
    return TenantOut.model_validate(tenant)


@router.post("/{tenant}/enable", response_model=TenantOut)
def enable_tenant(ctx: TenantAdmin, session: SessionDep) -> TenantOut:
    tenant = tenants.set_disabled(session, actor=ctx.principal, tenant=ctx.tenant, disabled=False)
    return TenantOut.model_validate(tenant)


@router.post("/{tenant}/clients", status_code=201, response_model=ClientCreated)
def create_client(ctx: TenantAdmin, body: ClientCreate, session: SessionDep) -> ClientCreated:
    client, secret = clients.create(
        session,
        actor=ctx.principal,
        role=sc.Role.TENANT,
        tenant=ctx.tenant,
        scopes=frozenset(body.scopes) if body.scopes is not None else None,
        name=body.name,
    )
    return ClientCreated(**ClientOut.model_validate(client).model_dump(), client_secret=secret)


@router.get("/{tenant}/clients", response_model=list[ClientOut])
def list_clients(ctx: TenantRead, session: SessionDep) -> list[ClientOut]:
    rows = clients.list_for_tenant(session, tenant=ctx.tenant)
    return [ClientOut.model_validate(c) for c in rows]


@router.delete("/{tenant}/clients/{client_id}", response_model=ClientOut)
def revoke_client(ctx: TenantAdmin, client_id: str, session: SessionDep) -> ClientOut:
    client = clients.revoke(session, actor=ctx.principal, tenant=ctx.tenant, client_id=client_id)
    return ClientOut.model_validate(client)
