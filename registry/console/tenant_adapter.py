"""An adapter's page: versions (newest first), aliases, promotion policy, schedule, drift policy,
traffic split, and the promote / roll back forms (which post to the alias action route).

A fixed number of statements whatever the number of versions: the adapter, its base model's
name, the versions' columns, their held-out losses, the aliases, the roll-back target, the
schedule, the drift policy, the traffic split (and production's version) and the split's last
automatic change.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from registry.adapters.service import adapters
from registry.auth import scopes as sc
from registry.dependencies import SessionDep, TenantContext
from registry.drift.repository import DriftRepository
from registry.models.enums import VersionStatus
from registry.schedules.repository import ScheduleRepository
from registry.splits.repository import SplitRepository
from registry.splits.schemas import RollbackPolicy
from registry.splits.service import splits

from . import tenant_queries as queries
from .render import ConsoleRoute, page
from .session import tenant_page

# no prefix: tenant_pages includes this router under /console
router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

# `?done=<word>` after an action: the flash line the page shows
FLASH = {
    "promoted": "Promoted: production now points at the version you chose.",
    "rolled-back": "Rolled back: production points at the previous ready version.",
    "cancelled": "Cancel requested: the job stops (or has stopped) and the reason is recorded.",
    "split-set": "Traffic split set: production's traffic is shared as shown below.",
    "split-cleared": "Traffic split cleared: production takes all traffic.",
}

TenantRead = Annotated[TenantContext, Depends(tenant_page(sc.ADAPTERS_READ))]


def text(value: Any) -> str:
    """A config or policy value as people read it (lists of words joined, JSON otherwise)."""
    if value is None:
        return "-"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) if value else "none"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(", ", ": ")) if value else "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def facts(values: dict[str, Any], first: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(field, value) lines, the `first` fields first, then the others by name."""
    keys = [k for k in first if k in values] + sorted(k for k in values if k not in first)
    return [(k, text(values[k])) for k in keys]


def policy_facts(policy: dict[str, Any]) -> list[tuple[str, str]]:
    """The promotion policy, the deciding fields first (an unset `primary` left out)."""
    shown = {k: v for k, v in policy.items() if not (k == "primary" and v is None)}
    return facts(shown, ("mode", "primary", "primary_metric", "margin", "tolerance"))


@router.get("/t/{tenant}/adapters/{name}", response_class=HTMLResponse)
def adapter_page(request: Request, ctx: TenantRead, name: str, session: SessionDep) -> Response:
    tenant = ctx.tenant
    adapter = adapters.get(session, tenant=tenant, name=name)  # another tenant's: 404
    rows, cut = queries.versions(session, tenant_id=tenant.id, adapter_id=adapter.id)
    alias_rows = queries.aliases(session, tenant_id=tenant.id, adapter_id=adapter.id)
    production = next((a.version for a in alias_rows if a.alias == "production"), None)
    rollback = (
        queries.ready_before(session, tenant_id=tenant.id, adapter_id=adapter.id, number=production)
        if production is not None
        else None
    )
    aliases_of: dict[int, list[str]] = {}
    for a in alias_rows:
        aliases_of.setdefault(a.version, []).append(a.alias)
    schedule = ScheduleRepository(session, tenant.id).get(adapter.id)
    drift = DriftRepository(session, tenant.id).policy(adapter.id)
    split = splits.get(session, tenant=tenant, adapter=adapter)
    caller = request.state.console
    can_promote = (
        caller.can(sc.ADAPTERS_WRITE) and not tenant.disabled and adapter.archived_at is None
    )
    return page(
        request,
        "adapter.html",
        tenant=tenant,
        adapter=adapter,
        t=quote(tenant.slug, safe=""),
        here=f"/console/t/{quote(tenant.slug, safe='')}/adapters/{quote(adapter.name, safe='')}",
        base_model=queries.base_model_name(session, adapter.base_model_id),
        versions=rows,
        cut=cut,
        limit=queries.LIMIT,
        aliases=alias_rows,
        aliases_of=aliases_of,
        production=production,
        rollback=rollback,
        ready=VersionStatus.READY.value,
        policy=policy_facts(adapter.promotion_policy or {}),
        schedule=schedule,
        drift=drift,
        can_promote=can_promote,
        split=split,
        split_policy=split.rollback or (None if split.started_at else RollbackPolicy()),
        last_rollback=SplitRepository(session, tenant.id).last_automatic(adapter.id),
        flash=FLASH.get(request.query_params.get("done", "")),
    )
