"""`GET /v1/training-backlog`: the training queue across tenants, for ops and auditors."""

from __future__ import annotations

import time
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Query, Request

from registry.auth import scopes as sc
from registry.auth.principal import Principal
from registry.auth.scopes import Role
from registry.dependencies import SessionDep, require_scope
from registry.errors import Forbidden, NotFound
from registry.tenants.repository import TenantRepository
from registry.training.backlog import TrainingBacklog, compute

router = APIRouter(tags=["training"])
log = structlog.get_logger(__name__)

# the scope of the cross-tenant job list (GET /v1/training-jobs): every ops and auditor token
BacklogRead = Annotated[Principal, Depends(require_scope(sc.ADAPTERS_READ))]


@router.get("/v1/training-backlog", response_model=TrainingBacklog)
def training_backlog(
    principal: BacklogRead,
    session: SessionDep,
    request: Request,
    tenant: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="top tenants listed")] = 10,
) -> TrainingBacklog:
    """Ops and auditors: queued and running jobs by trigger and by tenant (top `limit` by
    queued), the oldest queued job's age, jobs finished in the last hour (the drain rate), the
    ETA of the backlog at that rate (null when nothing finished in the hour), and the claim
    priorities and per-tenant cap in force. `tenant` narrows it all to one tenant."""
    if principal.role is Role.TENANT:
        raise Forbidden("the training backlog across tenants is for ops and auditors")
    row = None
    if tenant is not None:
        row = TenantRepository(session).get_by_slug(tenant)
        if row is None:
            raise NotFound(f"tenant '{tenant}' not found")
    start = time.perf_counter()
    out = compute(session, settings=request.app.state.settings, tenant=row, limit=limit)
    log.info(
        "training.backlog",
        tenant=tenant,
        queued=out.queued,
        running=out.running,
        query_ms=round((time.perf_counter() - start) * 1000, 1),
    )
    return out
