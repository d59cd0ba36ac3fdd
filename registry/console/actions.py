"""Console actions on aliases: promote a version to production, roll back, move another alias.

The form posts `version` and `reason`; the move goes through `aliases.set` exactly as
PUT /v1/tenants/{tenant}/adapters/{name}/aliases/{alias} does (ready versions only, the promotion
gate's override rule, the reason in the alias event and the audit log). A refusal comes back as
the registry's error, rendered as an HTML page with the same status; nothing is committed.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Path
from fastapi.responses import RedirectResponse

from registry.adapters.schemas import VERSION_MAX
from registry.adapters.service import adapters
from registry.aliases.schemas import ALIAS_PATTERN
from registry.aliases.service import aliases
from registry.dependencies import SessionDep, TenantContext
from registry.errors import Unprocessable

from .render import ConsoleRoute
from .session import PATH, tenant_form

router = APIRouter(prefix=PATH, route_class=ConsoleRoute, include_in_schema=False)

REASON_MIN, REASON_MAX = 3, 500

AdaptersWrite = Annotated[TenantContext, Depends(tenant_form("adapters:write"))]
AliasName = Annotated[str, Path(pattern=ALIAS_PATTERN)]


def checked_reason(reason: str) -> str:
    """The reason every console action asks for: 3 to 500 characters, not just spaces."""
    text = reason.strip()
    if not REASON_MIN <= len(text) <= REASON_MAX:
        raise Unprocessable(
            f"reason: give a reason of {REASON_MIN} to {REASON_MAX} characters "
            "(it goes into the audit log)"
        )
    return text


@router.post("/t/{tenant}/adapters/{name}/aliases/{alias}")
def move_alias(
    ctx: AdaptersWrite,
    name: str,
    alias: AliasName,
    session: SessionDep,
    version: Annotated[int, Form(ge=1, le=VERSION_MAX)],
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> RedirectResponse:
    """Point `alias` at `version`; then show that version's page with a flash line."""
    why = checked_reason(reason)
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    moved = aliases.set(
        session,
        actor=ctx.principal,
        tenant=ctx.tenant,
        adapter=adapter,
        alias=alias,
        number=version,
        reason=why,
    )
    done = "promoted" if alias == "production" else "moved"
    url = (
        f"{PATH}/t/{quote(ctx.tenant.slug, safe='')}/adapters/{quote(adapter.name, safe='')}"
        f"/v/{moved.version}?done={done}"
    )
    return RedirectResponse(url, status_code=303)
