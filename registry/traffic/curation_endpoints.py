"""Curated datasets from production traffic. Included before the datasets router, so that
`from-traffic` is not taken for a dataset id."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from registry.auth import scopes as sc
from registry.datasets.endpoints import DatasetsWrite
from registry.datasets.schemas import DatasetOut
from registry.db import utcnow
from registry.dependencies import SessionDep
from registry.errors import Forbidden
from registry.traffic.curate import TrafficFilter, curate
from registry.traffic.curation_schemas import FromTrafficIn, FromTrafficOut

router = APIRouter(tags=["datasets"])


@router.post(
    "/v1/tenants/{tenant}/datasets/from-traffic",
    status_code=201,
    response_model=FromTrafficOut,
    responses={
        200: {"description": "the dataset's latest version already holds exactly these rows"},
        413: {"description": "over the tenant's dataset quota or the row limit"},
        422: {
            "description": "fewer rows than min_count (`traffic` has the counts), too many "
            "traces for one dataset (narrow the window), or an invalid window"
        },
    },
)
def from_traffic(
    ctx: DatasetsWrite,
    body: FromTrafficIn,
    session: SessionDep,
    request: Request,
    response: Response,
) -> FromTrafficOut:
    """A new version of dataset `name` from the adapter's full traces in the window: the
    served answers, or the corrections that replace them (needs datasets:write and
    traffic:read)."""
    if sc.TRAFFIC_READ not in ctx.principal.scopes:
        raise Forbidden(f"this token lacks the '{sc.TRAFFIC_READ}' scope")
    since, until = body.bounds(utcnow())
    filt = TrafficFilter(
        adapter=body.adapter,
        since=since,
        until=until,
        version=body.version,
        ratings=sorted(set(body.ratings)) if body.ratings is not None else None,
        corrected_only=body.corrected_only,
    )
    done, summary = curate(
        session,
        actor=ctx.principal,
        tenant=ctx.tenant,
        name=body.name,
        filt=filt,
        min_count=body.min_count,
        store=request.app.state.store,
        settings=request.app.state.settings,
    )
    if not done.created:
        response.status_code = 200
    row = DatasetOut.model_validate(done.row)
    return FromTrafficOut(**row.model_dump(), traffic=summary)
