"""Feedback through the registry (the gateway takes the same body at `POST /v1/feedback`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from registry.adapters.service import adapters
from registry.auth import scopes as sc
from registry.dependencies import SessionDep, TenantContext, tenant_access
from registry.traffic.feedback import feedback
from registry.traffic.feedback_schemas import FeedbackList, FeedbackOut, FeedbackPost
from registry.validation_types import INT64_MAX

router = APIRouter(tags=["feedback"])
FEEDBACK = "/v1/tenants/{tenant}/feedback"

TrafficRead = Annotated[TenantContext, Depends(tenant_access(sc.TRAFFIC_READ))]
TrafficWrite = Annotated[TenantContext, Depends(tenant_access(sc.TRAFFIC_WRITE, write=True))]


@router.post(
    FEEDBACK,
    status_code=201,
    response_model=FeedbackOut,
    responses={200: {"model": FeedbackOut, "description": "Replaced earlier feedback"}},
)
def post_feedback(
    ctx: TrafficWrite, body: FeedbackPost, session: SessionDep, response: Response
) -> FeedbackOut:
    """Rate (and optionally correct) one response by its `x-request-id`. One feedback per
    request: posting again replaces it (200, `replaced: true`)."""
    out = feedback.record(
        session,
        actor_subject=ctx.principal.subject,
        tenant_id=ctx.tenant.id,
        request_id=body.request_id,
        data=body,
    )
    if out.replaced:
        response.status_code = 200
    return out


@router.get(FEEDBACK, response_model=FeedbackList)
def list_feedback(
    ctx: TrafficRead,
    session: SessionDep,
    adapter: str | None = None,
    rating: Annotated[int | None, Query(ge=-1, le=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> FeedbackList:
    """Newest first; `adapter` (a name) and `rating` narrow it."""
    adapter_id = None
    if adapter is not None:
        adapter_id = adapters.get(session, tenant=ctx.tenant, name=adapter).id
    items = feedback.list(
        session,
        tenant_id=ctx.tenant.id,
        adapter_id=adapter_id,
        rating=rating,
        limit=limit,
        offset=offset,
    )
    return FeedbackList(items=list(items), limit=limit, offset=offset)
