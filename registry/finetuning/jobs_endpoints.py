"""`/v1/fine_tuning/jobs`: OpenAI's fine-tuning jobs for the caller's tenant (service: jobs.py).

Reads take `adapters:read`; create, cancel, pause and resume take `training:write`."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from registry.auth import scopes as sc
from registry.dependencies import SessionDep, TenantContext
from registry.finetuning.checkpoints import list_checkpoints
from registry.finetuning.deps import tenant_caller
from registry.finetuning.errors import OpenAIRoute
from registry.finetuning.events import list_events
from registry.finetuning.jobs import fine_tuning
from registry.finetuning.jobs_schemas import CheckpointList, EventList, JobCreate, JobList, JobOut

router = APIRouter(route_class=OpenAIRoute)
JOBS = "/v1/fine_tuning/jobs"
_METADATA = re.compile(r"^metadata\[(?P<key>[^\]]{1,64})\]$")

Read = Annotated[TenantContext, Depends(tenant_caller(sc.ADAPTERS_READ))]
Write = Annotated[TenantContext, Depends(tenant_caller(sc.TRAINING_WRITE, write=True))]


def _one(ctx: TenantContext, session: SessionDep, row_id: str) -> JobOut:
    row = fine_tuning.get(session, tenant=ctx.tenant, job_id=row_id)
    return fine_tuning.to_out(session, tenant=ctx.tenant, rows=[row])[0]


@router.post(JOBS, response_model=JobOut)
def create_job(ctx: Write, body: JobCreate, session: SessionDep, request: Request) -> JobOut:
    """Train a new version of `ft-<model>[-<suffix>]` on the training file (queued at once)."""
    row = fine_tuning.create(
        session,
        actor=ctx.principal,
        tenant=ctx.tenant,
        body=body,
        settings=request.app.state.settings,
        queue=request.app.state.tasks,
    )
    return fine_tuning.to_out(session, tenant=ctx.tenant, rows=[row])[0]


@router.get(JOBS, response_model=JobList)
def list_jobs(
    ctx: Read,
    session: SessionDep,
    request: Request,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JobList:
    """Newest first; `metadata[key]=value` keeps jobs with that metadata pair."""
    wanted = {
        m.group("key"): value
        for name, value in request.query_params.multi_items()
        if (m := _METADATA.match(name))
    }
    rows, more = fine_tuning.list(
        session, tenant=ctx.tenant, after=after, limit=limit, metadata=wanted
    )
    return JobList(data=fine_tuning.to_out(session, tenant=ctx.tenant, rows=rows), has_more=more)


@router.get(JOBS + "/{job_id}", response_model=JobOut)
def retrieve_job(ctx: Read, job_id: str, session: SessionDep) -> JobOut:
    return _one(ctx, session, job_id)


@router.post(JOBS + "/{job_id}/cancel", response_model=JobOut)
def cancel_job(ctx: Write, job_id: str, session: SessionDep, request: Request) -> JobOut:
    """A queued or paused job is cancelled at once; a running one at its next step."""
    store = request.app.state.store
    fine_tuning.cancel(session, actor=ctx.principal, tenant=ctx.tenant, job_id=job_id, store=store)
    return _one(ctx, session, job_id)


@router.post(JOBS + "/{job_id}/pause", response_model=JobOut)
def pause_job(ctx: Write, job_id: str, session: SessionDep) -> JobOut:
    """A queued job is paused at once; a running one saves its state after its current step."""
    fine_tuning.pause(session, actor=ctx.principal, tenant=ctx.tenant, job_id=job_id)
    return _one(ctx, session, job_id)


@router.post(JOBS + "/{job_id}/resume", response_model=JobOut)
def resume_job(ctx: Write, job_id: str, session: SessionDep, request: Request) -> JobOut:
    """A paused job is queued again; it continues from its saved state on any worker."""
    fine_tuning.resume(
        session,
        actor=ctx.principal,
        tenant=ctx.tenant,
        job_id=job_id,
        queue=request.app.state.tasks,
    )
    return _one(ctx, session, job_id)


@router.get(JOBS + "/{job_id}/events", response_model=EventList)
def job_events(
    ctx: Read,
    job_id: str,
    session: SessionDep,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> EventList:
    row = fine_tuning.get(session, tenant=ctx.tenant, job_id=job_id)
    return list_events(session, row=row, after=after, limit=limit)


@router.get(JOBS + "/{job_id}/checkpoints", response_model=CheckpointList)
def job_checkpoints(
    ctx: Read,
    job_id: str,
    session: SessionDep,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> CheckpointList:
    row = fine_tuning.get(session, tenant=ctx.tenant, job_id=job_id)
    return list_checkpoints(session, row=row, after=after, limit=limit)
