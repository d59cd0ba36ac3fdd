from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field

from registry.auth import scopes as sc
from registry.dependencies import SessionDep, TenantContext, tenant_access
from registry.models.enums import CaptureMode
from registry.traffic.capture import capture_settings
from registry.traffic.capture_schemas import CaptureIn, CaptureOut, EraseOut, TracePage
from registry.traffic.erase import erase_traffic, list_traces
from registry.validation_types import AwareDatetime

router = APIRouter(tags=["traffic"])
Rating = Annotated[int, Field(ge=-1, le=1)]
CAPTURE = "/v1/tenants/{tenant}/adapters/{name}/traffic-capture"

Read = Annotated[TenantContext, Depends(tenant_access(sc.TRAFFIC_READ))]
Write = Annotated[TenantContext, Depends(tenant_access(sc.TRAFFIC_WRITE, write=True))]
# Erasure also works on a disabled tenant: offboarding is when it is asked for.
Erase = Annotated[TenantContext, Depends(tenant_access(sc.TRAFFIC_WRITE))]


@router.put(CAPTURE, response_model=CaptureOut)
def set_capture(
    ctx: Write, name: str, body: CaptureIn, request: Request, session: SessionDep
) -> CaptureOut:
    """What the gateway keeps of this adapter's traffic: prompts only or full traces, the
    share of requests, how long, and what is redacted first (a PUT replaces all of it)."""
    return capture_settings.put(
        session,
        actor=ctx.principal,
        tenant=ctx.tenant,
        name=name,
        data=body,
        settings=request.app.state.settings,
    )


@router.get(CAPTURE, response_model=CaptureOut)
def get_capture(ctx: Read, name: str, request: Request, session: SessionDep) -> CaptureOut:
    """The settings in force; `configured: false` when the platform's defaults apply."""
    return capture_settings.get(
        session, tenant=ctx.tenant, name=name, settings=request.app.state.settings
    )


@router.delete(CAPTURE, status_code=204)
def delete_capture(ctx: Write, name: str, session: SessionDep) -> Response:
    """Back to the platform's defaults; traces already captured stay."""
    capture_settings.delete(session, actor=ctx.principal, tenant=ctx.tenant, name=name)
    return Response(status_code=204)


@router.delete("/v1/tenants/{tenant}/traffic", response_model=EraseOut)
def erase(
    ctx: Erase, request: Request, session: SessionDep, adapter: str | None = None
) -> EraseOut:
    """Erase the tenant's captured traffic (or one adapter's): prompts, traces, feedback and
    every trace object in the store."""
    return erase_traffic(
        session,
        actor=ctx.principal,
        tenant=ctx.tenant,
        adapter_name=adapter,
        store=request.app.state.store,
    )


@router.get("/v1/tenants/{tenant}/traces", response_model=TracePage)
def traces(
    ctx: Read,
    request: Request,
    session: SessionDep,
    adapter: str | None = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    rating: Annotated[list[Rating] | None, Query()] = None,
    captured: CaptureMode | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> TracePage:
    """Captured requests, newest first, with the full trace (full capture) and the feedback.
    `rating` (repeatable) keeps only traces with feedback rated so."""
    return list_traces(
        session,
        tenant=ctx.tenant,
        store=request.app.state.store,
        adapter_name=adapter,
        since=since,
        until=until,
        ratings=rating,
        captured=captured,
        limit=limit,
        cursor=cursor,
    )
