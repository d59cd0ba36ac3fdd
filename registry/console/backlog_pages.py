"""The training backlog page for ops and auditors: what waits, for whom, how fast it drains
(the same figures as GET /v1/training-backlog)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from registry.auth import scopes as sc
from registry.dependencies import SessionDep
from registry.errors import Forbidden, NotFound
from registry.tenants.repository import TenantRepository
from registry.training.backlog import compute

from .render import ConsoleRoute, page
from .session import PATH, Caller

router = APIRouter(prefix=PATH, route_class=ConsoleRoute, include_in_schema=False)
TOP = 25


@router.get("/backlog", response_class=HTMLResponse)
def backlog_page(
    request: Request,
    session: SessionDep,
    caller: Caller,
    tenant: Annotated[str, Query(max_length=63)] = "",
) -> HTMLResponse:
    if caller.is_tenant:
        raise Forbidden("The training backlog across tenants is for ops and auditors.")
    if not caller.can(sc.ADAPTERS_READ):
        raise Forbidden(f"Your client lacks the '{sc.ADAPTERS_READ}' scope.")
    row = None
    if tenant.strip():
        row = TenantRepository(session).get_by_slug(tenant.strip())
        if row is None:
            raise NotFound(f"tenant '{tenant.strip()}' not found")
    body = compute(session, settings=request.app.state.settings, tenant=row, limit=TOP)
    return page(request, "backlog.html", b=body, tenant=tenant.strip())
