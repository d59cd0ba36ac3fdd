from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from registry.auth import scopes as sc
from registry.dependencies import SessionDep, TenantContext, tenant_access
from registry.labelling.schemas import (
    LabellingJobCreate,
    LabellingJobList,
    LabellingJobOut,
    LabellingParams,
)
from registry.labelling.service import labelling
from registry.models.enums import JobStatus

router = APIRouter(tags=["labelling"])
JOBS = "/v1/tenants/{tenant}/labelling-jobs"

JobsRead = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_READ))]
JobsWrite = Annotated[TenantContext, Depends(tenant_access(sc.TRAINING_WRITE, write=True))]


@router.post(
    "/v1/tenants/{tenant}/adapters/{name}/labelling-jobs",
    status_code=202,
    response_model=LabellingJobOut,
)
def create_labelling_job(
    name: str, ctx: JobsWrite, body: LabellingJobCreate, session: SessionDep, request: Request
) -> LabellingJobOut:
    """Send the adapter's recent traffic prompts to a teacher; answers that pass the adapter's
    pinned eval checks become a version of the dataset `dataset`."""
    params = LabellingParams.model_validate(body.model_dump(exclude={"teacher"}))
    job = labelling.create(
        session,
        actor=ctx.principal,
        tenant=ctx.tenant,
        adapter=name,
        teacher_name=body.teacher,
        params=params,
        followup=None,
        queue=request.app.state.tasks,
    )
    return labelling.to_out(session, [job])[0]


@router.get(JOBS, response_model=LabellingJobList)
def list_labelling_jobs(
    ctx: JobsRead,
    session: SessionDep,
    adapter: str | None = None,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> LabellingJobList:
    rows = labelling.list(session, tenant=ctx.tenant, adapter=adapter, status=status, limit=limit)
    return LabellingJobList(items=labelling.to_out(session, rows))


@router.get(JOBS + "/{labelling_job_id}", response_model=LabellingJobOut)
def get_labelling_job(
    ctx: JobsRead, labelling_job_id: uuid.UUID, session: SessionDep
) -> LabellingJobOut:
    """Status, progress (sent, kept, refused by check, failed) and the error if it failed."""
    job = labelling.get(session, tenant=ctx.tenant, job_id=labelling_job_id)
    return labelling.to_out(session, [job])[0]


@router.post(JOBS + "/{labelling_job_id}/cancel", response_model=LabellingJobOut)
def cancel_labelling_job(
    ctx: JobsWrite, labelling_job_id: uuid.UUID, session: SessionDep
) -> LabellingJobOut:
    job = labelling.cancel(session, actor=ctx.principal, tenant=ctx.tenant, job_id=labelling_job_id)
    return labelling.to_out(session, [job])[0]
