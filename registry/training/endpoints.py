from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from registry.auth import scopes as sc
from registry.auth.principal import Principal
from registry.auth.scopes import Role
from registry.dependencies import SessionDep, TenantContext, require_scope, tenant_access
from registry.errors import Forbidden, NotFound
from registry.tenants.repository import TenantRepository
from registry.training.schemas import JobStatus, TrainingJobCreate, TrainingJobList, TrainingJobOut
from registry.training.service import training

router = APIRouter(tags=["training"])
TENANT_JOBS = "/v1/tenants/{tenant}/training-jobs"

JobsRead = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_READ))]
JobsReadAll = Annotated[Principal, Depends(require_scope(sc.ADAPTERS_READ))]  # cross-tenant
JobsWrite = Annotated[TenantContext, Depends(tenant_access(sc.TRAINING_WRITE, write=True))]


@router.post(TENANT_JOBS, status_code=201, response_model=TrainingJobOut)
def create_job(
    ctx: JobsWrite, body: TrainingJobCreate, session: SessionDep, request: Request
) -> TrainingJobOut:
    """Queue training of a new version of one of the tenant's adapters on its own datasets."""
    job = training.create(
        session,
        actor=ctx.principal,
        tenant=ctx.tenant,
        data=body,
        settings=request.app.state.settings,
        queue=request.app.state.tasks,
    )
    return training.to_out(session, [job], with_events=True)[0]


@router.get(TENANT_JOBS, response_model=TrainingJobList)
def list_jobs(
    ctx: JobsRead,
    session: SessionDep,
    status: JobStatus | None = None,
    adapter: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> TrainingJobList:
    rows = training.list(session, tenant=ctx.tenant, status=status, adapter=adapter, limit=limit)
    return TrainingJobList(items=training.to_out(session, rows))


@router.get(TENANT_JOBS + "/{job_id}", response_model=TrainingJobOut)
def get_job(ctx: JobsRead, job_id: uuid.UUID, session: SessionDep) -> TrainingJobOut:
    """Status, progress (step of total, losses, tokens/s) and the event list."""
    job = training.get(session, tenant=ctx.tenant, job_id=job_id)
    return training.to_out(session, [job], with_events=True)[0]


@router.post(TENANT_JOBS + "/{job_id}/cancel", response_model=TrainingJobOut)
def cancel_job(
    ctx: JobsWrite, job_id: uuid.UUID, session: SessionDep, request: Request
) -> TrainingJobOut:
    """A queued or paused job is cancelled at once; a running one stops at its next step."""
    job = training.cancel(
        session,
        actor=ctx.principal,
        tenant=ctx.tenant,
        job_id=job_id,
        store=getattr(request.app.state, "store", None),
    )
    return training.to_out(session, [job], with_events=True)[0]


@router.post(TENANT_JOBS + "/{job_id}/pause", response_model=TrainingJobOut)
def pause_job(ctx: JobsWrite, job_id: uuid.UUID, session: SessionDep) -> TrainingJobOut:
    """A queued job is paused at once; a running one stores its full state after its current
    step and pauses (`pause_requested` until then). 409 once finished."""
    job = training.pause(session, actor=ctx.principal, tenant=ctx.tenant, job_id=job_id)
    return training.to_out(session, [job], with_events=True)[0]


@router.post(TENANT_JOBS + "/{job_id}/resume", response_model=TrainingJobOut)
def resume_job(
    ctx: JobsWrite, job_id: uuid.UUID, session: SessionDep, request: Request
) -> TrainingJobOut:
    """A paused job is queued again and continues from its saved state; 409 unless paused."""
    job = training.resume(
        session,
        actor=ctx.principal,
        tenant=ctx.tenant,
        job_id=job_id,
        queue=request.app.state.tasks,
    )
    return training.to_out(session, [job], with_events=True)[0]


@router.get("/v1/training-jobs", response_model=TrainingJobList)
def list_all_jobs(
    principal: JobsReadAll,
    session: SessionDep,
    status: JobStatus | None = None,
    tenant: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> TrainingJobList:
    """Ops and auditors: jobs across all tenants, newest first."""
    if principal.role is Role.TENANT:
        raise Forbidden("listing jobs across tenants is for ops and auditors")
    row = None
    if tenant is not None:
        row = TenantRepository(session).get_by_slug(tenant)
        if row is None:
            raise NotFound(f"tenant '{tenant}' not found")
    rows = training.list_all(session, status=status, tenant=row, limit=limit)
    return TrainingJobList(items=training.to_out(session, rows))
