"""The console's home (tenants), a tenant's page (adapters, recent jobs) and, through
`tenant_adapter`, an adapter's page."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from registry.auth import scopes as sc
from registry.dependencies import SessionDep, TenantContext
from registry.errors import Forbidden, NotFound
from registry.training.repository import PlatformJobRepository, TrainingJobRepository

from . import tenant_queries as queries
from .render import ConsoleRoute, page
from .session import PATH, Caller, tenant_page
from .tenant_adapter import FLASH
from .tenant_adapter import router as adapter_router

router = APIRouter(prefix=PATH, route_class=ConsoleRoute, include_in_schema=False)

RECENT_JOBS = 10
SEARCH_MAX = 100  # characters of a search that are used


@router.get("", response_class=HTMLResponse)
def home(request: Request, session: SessionDep, caller: Caller, q: str = "") -> Response:
    """Ops and auditors: every tenant (searchable); a tenant goes straight to its own page."""
    if caller.is_tenant:
        if caller.tenant_slug is None:
            raise NotFound("Your tenant no longer exists.")
        return RedirectResponse(f"{PATH}/t/{quote(caller.tenant_slug)}", status_code=303)
    if not caller.can(sc.TENANTS_READ):
        raise Forbidden(f"Your client lacks the '{sc.TENANTS_READ}' scope.")
    q = q.strip()[:SEARCH_MAX]
    rows, cut = queries.tenants(session, q=q, limit=queries.LIMIT)
    return page(request, "home.html", tenants=rows, cut=cut, q=q, limit=queries.LIMIT)


TenantRead = Annotated[TenantContext, Depends(tenant_page(sc.ADAPTERS_READ))]


@router.get("/t/{tenant}", response_class=HTMLResponse)
def tenant_home(request: Request, ctx: TenantRead, session: SessionDep, q: str = "") -> Response:
    """A tenant's adapters (searchable by name) with production and newest version, and its
    most recent jobs."""
    q = q.strip()[:SEARCH_MAX]
    rows, cut = queries.adapters(session, tenant_id=ctx.tenant.id, q=q, limit=queries.LIMIT)
    jobs = TrainingJobRepository(session, ctx.tenant.id).list(
        status=None, adapter_id=None, limit=RECENT_JOBS
    )
    labels = PlatformJobRepository(session).labels(jobs)
    return page(
        request,
        "tenant.html",
        tenant=ctx.tenant,
        adapters=rows,
        cut=cut,
        q=q,
        limit=queries.LIMIT,
        jobs=[(j, labels.get(j.id)) for j in jobs],
        flash=FLASH.get(request.query_params.get("done", "")),
    )


router.include_router(adapter_router)
