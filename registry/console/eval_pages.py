"""The evals page of an adapter: a leaderboard per pinned suite (and the base model's general
suite, and each version's held-out score), and the suite rows that regressed from `a` to `b`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from registry.adapters.repository import VersionRepository
from registry.adapters.schemas import VERSION_MAX
from registry.adapters.service import adapters
from registry.aliases.repository import AliasRepository
from registry.dependencies import SessionDep, TenantContext
from registry.errors import NotFound, Unprocessable
from registry.evals.schemas import Comparison
from registry.evals.service import evals

from .eval_data import board_of, heldout_board, regressions, suites_of, version_numbers
from .render import ConsoleRoute, page
from .session import PATH, tenant_page

router = APIRouter(prefix=PATH, route_class=ConsoleRoute, include_in_schema=False)

AdaptersRead = Annotated[TenantContext, Depends(tenant_page("adapters:read"))]
VersionQuery = Annotated[int | None, Query(ge=1, le=VERSION_MAX)]


@router.get("/t/{tenant}/adapters/{name}/evals", response_class=HTMLResponse)
def evals_page(
    request: Request,
    ctx: AdaptersRead,
    name: str,
    session: SessionDep,
    a: VersionQuery = None,
    b: VersionQuery = None,
) -> HTMLResponse:
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    numbers = version_numbers(session, adapter)
    for given in (a, b):
        if given is not None and given not in numbers:
            raise NotFound(f"version {given} of adapter '{adapter.name}' not found")
    production = AliasRepository(session, ctx.tenant.id).get(adapter.id, "production")
    prod_number = (
        VersionRepository(session, ctx.tenant.id).numbers([production.version_id])[
            production.version_id
        ]
        if production is not None
        else None
    )
    a = a if a is not None else prod_number
    b = b if b is not None else (numbers[-1] if numbers else None)
    suites = suites_of(session, adapter)
    boards = [board_of(session, adapter, key, suite) for key, suite in suites]
    held = heldout_board(session, adapter)
    if held.rows:
        boards.append(held)
    chosen = request.query_params.get("a") is not None or request.query_params.get("b") is not None
    if chosen and a is not None and a == b:
        raise Unprocessable("a and b are the same version: pick two different versions")
    compared: Comparison | None = None
    regressed = []
    why_not = ""
    if a is None or b is None:
        why_not = "Nothing to compare yet: the adapter needs a production version and a newer one."
    elif a == b:
        why_not = f"v{a} is both production and the newest version: pick two with a and b."
    else:
        compared = evals.compare(session, adapter=adapter, a=a, b=f"v{b}")
        regressed = regressions(session, request.app.state.store, adapter, suites, a, b)
    return page(
        request,
        "evals.html",
        tenant=ctx.tenant,
        adapter=adapter,
        base_url=f"{PATH}/t/{ctx.tenant.slug}/adapters/{adapter.name}",
        boards=boards,
        numbers=numbers,
        production=prod_number,
        a=a,
        b=b,
        compared=compared,
        regressed=regressed,
        why_not=why_not,
    )
