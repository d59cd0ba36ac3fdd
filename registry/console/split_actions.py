"""Console action on an adapter's traffic split: set it (weights as 'production=90,
candidate=10' and the rollback policy) or clear it, with a reason.

The change goes through `splits.set` / `splits.clear` exactly as PUT / DELETE
/v1/tenants/{tenant}/adapters/{name}/traffic-split do (ready versions only, production's version
included, history, audit, the gateways told). A refusal comes back as the registry's error,
rendered as an HTML page with the same status; nothing is committed.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from registry.adapters.service import adapters
from registry.dependencies import SessionDep, TenantContext
from registry.errors import Unprocessable
from registry.splits.schemas import RollbackPolicy, SplitSet, parse_weights
from registry.splits.service import splits

from .actions import checked_reason
from .render import ConsoleRoute
from .session import PATH, tenant_form

router = APIRouter(prefix=PATH, route_class=ConsoleRoute, include_in_schema=False)

AdaptersWrite = Annotated[TenantContext, Depends(tenant_form("adapters:write"))]
Text = Annotated[str, Form(max_length=2000)]


def _number(name: str, value: str) -> float | None:
    """A policy field: blank means 'not checked'."""
    if not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise Unprocessable(f"{name}: give a number, or leave it blank") from None


def _form(weights: str, min_requests: str, error_rise: str, latency: str) -> SplitSet:
    """The form's fields as the API's body; the API's messages on what is wrong."""
    try:
        shares = parse_weights(weights)
        criteria = (_number("max error rate increase", error_rise), _number("latency", latency))
        policy = None
        if any(c is not None for c in criteria):
            n = _number("min requests", min_requests)
            policy = RollbackPolicy(
                min_requests=int(n) if n is not None else 50,
                max_error_rate_increase=criteria[0],
                max_latency_ratio=criteria[1],
            )
        return SplitSet(weights=shares, rollback=policy)
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            raise Unprocessable("; ".join(problems)) from None
        raise Unprocessable(f"weights: {exc}") from None


@router.post("/t/{tenant}/adapters/{name}/split")
def change_split(
    ctx: AdaptersWrite,
    name: str,
    session: SessionDep,
    reason: Text = "",
    weights: Text = "",
    min_requests: Text = "",
    max_error_rate_increase: Text = "",
    max_latency_ratio: Text = "",
    clear: Text = "",
) -> RedirectResponse:
    """Set the split (or, with `clear`, back to production only); then the adapter's page."""
    why = checked_reason(reason)
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    if clear:
        splits.clear(session, actor=ctx.principal, tenant=ctx.tenant, adapter=adapter, reason=why)
        done = "split-cleared"
    else:
        body = _form(weights, min_requests, max_error_rate_increase, max_latency_ratio)
        splits.set(
            session,
            actor=ctx.principal,
            tenant=ctx.tenant,
            adapter=adapter,
            weights=body.weights,
            reason=why,
            rollback=body.rollback,
        )
        done = "split-set"
    url = (
        f"{PATH}/t/{quote(ctx.tenant.slug, safe='')}/adapters/{quote(adapter.name, safe='')}"
        f"?done={done}#split"
    )
    return RedirectResponse(url, status_code=303)
