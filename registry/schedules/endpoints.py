from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from registry.auth import scopes as sc
from registry.auth.principal import Principal
from registry.auth.scopes import Role
from registry.dependencies import SessionDep, TenantContext, require_scope, tenant_access
from registry.errors import Forbidden, NotFound
from registry.schedules.schemas import ScheduleIn, ScheduleList, ScheduleOut
from registry.schedules.service import schedules
from registry.tenants.repository import TenantRepository

router = APIRouter(tags=["schedules"])
SCHEDULE = "/v1/tenants/{tenant}/adapters/{name}/schedule"

Read = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_READ))]
ReadAll = Annotated[Principal, Depends(require_scope(sc.ADAPTERS_READ))]  # cross-tenant
OpsWrite = Annotated[TenantContext, Depends(tenant_access(sc.RETRAINING_WRITE, write=True))]


@router.put(SCHEDULE, response_model=ScheduleOut)
def set_schedule(ctx: OpsWrite, name: str, body: ScheduleIn, session: SessionDep) -> ScheduleOut:
    """Ops: retrain this adapter on a cron schedule in a time zone (one schedule per adapter;
    PUT replaces it). Each due time queues one training job with trigger `schedule`."""
    row = schedules.put(session, actor=ctx.principal, tenant=ctx.tenant, name=name, data=body)
    return schedules.out(row, ctx.tenant.slug, name)


@router.get(SCHEDULE, response_model=ScheduleOut)
def get_schedule(ctx: Read, name: str, session: SessionDep) -> ScheduleOut:
    row = schedules.get(session, tenant=ctx.tenant, name=name)
    return schedules.out(row, ctx.tenant.slug, name)


@router.delete(SCHEDULE, status_code=204)
def delete_schedule(ctx: OpsWrite, name: str, session: SessionDep) -> Response:
    schedules.delete(session, actor=ctx.principal, tenant=ctx.tenant, name=name)
    return Response(status_code=204)


@router.get("/v1/schedules", response_model=ScheduleList)
def list_schedules(
    principal: ReadAll,
    session: SessionDep,
    tenant: str | None = None,
    enabled: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> ScheduleList:
    """Ops and auditors: every schedule across tenants, soonest next run first, with the next
    few run times (UTC)."""
    if principal.role is Role.TENANT:
        raise Forbidden("listing schedules across tenants is for ops and auditors")
    row = None
    if tenant is not None:
        row = TenantRepository(session).get_by_slug(tenant)
        if row is None:
            raise NotFound(f"tenant '{tenant}' not found")
    return ScheduleList(items=schedules.list_all(session, tenant=row, enabled=enabled, limit=limit))
