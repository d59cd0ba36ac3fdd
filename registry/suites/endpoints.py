"""Eval-suite uploads: a tenant's suites and ops' platform suites.

Tenant suites take the dataset scopes (a suite is the tenant's data, like a dataset). Platform
suites are ops' (base_models:write to upload); every caller with base_models:read, tenants
included, may read them: they are the prompts a base model's general suite scores.
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from registry.auth import scopes as sc
from registry.auth.principal import Principal
from registry.datasets.endpoints import UPLOAD_DOC, content_response
from registry.dependencies import SessionDep, TenantContext, require_scope, tenant_access
from registry.models import Tenant
from registry.owned import answer_upload
from registry.suites.schemas import EvalSuiteList, EvalSuiteOut
from registry.suites.service import suites
from registry.validation_types import INT64_MAX

router = APIRouter(tags=["eval suites"])

TENANT = "/v1/tenants/{tenant}/eval-suites"
PLATFORM = "/v1/platform/eval-suites"

SuitesRead = Annotated[TenantContext, Depends(tenant_access(sc.DATASETS_READ))]
SuitesWrite = Annotated[TenantContext, Depends(tenant_access(sc.DATASETS_WRITE, write=True))]
PlatformRead = Annotated[Principal, Depends(require_scope(sc.BASE_MODELS_READ))]
PlatformWrite = Annotated[Principal, Depends(require_scope(sc.BASE_MODELS_WRITE))]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=INT64_MAX)]
_CONTENT: dict[int | str, dict[str, Any]] = {200: {"content": {"application/x-ndjson": {}}}}


@router.post(TENANT, status_code=201, response_model=EvalSuiteOut, **UPLOAD_DOC)
async def upload_suite(
    ctx: SuitesWrite, request: Request, response: Response, session: SessionDep
) -> EvalSuiteOut:
    """Upload a JSONL eval suite (rows of `messages` or `prompt`, each with `checks`) as a new
    version; it counts against the tenant's dataset quota."""
    return await _upload(ctx.principal, ctx.tenant, request, response, session)


@router.get(TENANT, response_model=EvalSuiteList)
def list_suites(
    ctx: SuitesRead,
    session: SessionDep,
    name: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> EvalSuiteList:
    return _list(session, ctx.tenant, name, limit, offset)


@router.get(TENANT + "/{suite_id}", response_model=EvalSuiteOut)
def get_suite(ctx: SuitesRead, suite_id: uuid.UUID, session: SessionDep) -> EvalSuiteOut:
    return EvalSuiteOut.model_validate(suites.get(session, tenant=ctx.tenant, suite_id=suite_id))


@router.get(TENANT + "/{suite_id}/content", responses=_CONTENT)
def download_suite(
    ctx: SuitesRead, suite_id: uuid.UUID, session: SessionDep, request: Request
) -> StreamingResponse:
    suite = suites.get(session, tenant=ctx.tenant, suite_id=suite_id)
    return content_response(request.app.state.store, suite)


@router.post(PLATFORM, status_code=201, response_model=EvalSuiteOut, **UPLOAD_DOC)
async def upload_platform_suite(
    principal: PlatformWrite, request: Request, response: Response, session: SessionDep
) -> EvalSuiteOut:
    """Upload a platform eval suite (ops: e.g. a base model's general suite); bounded by the
    upload limit, not by a tenant's quota."""
    return await _upload(principal, None, request, response, session)


@router.get(PLATFORM, response_model=EvalSuiteList)
def list_platform_suites(
    principal: PlatformRead,
    session: SessionDep,
    name: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> EvalSuiteList:
    return _list(session, None, name, limit, offset)


@router.get(PLATFORM + "/{suite_id}", response_model=EvalSuiteOut)
def get_platform_suite(
    principal: PlatformRead, suite_id: uuid.UUID, session: SessionDep
) -> EvalSuiteOut:
    return EvalSuiteOut.model_validate(suites.get(session, tenant=None, suite_id=suite_id))


@router.get(PLATFORM + "/{suite_id}/content", responses=_CONTENT)
def download_platform_suite(
    principal: PlatformRead, suite_id: uuid.UUID, session: SessionDep, request: Request
) -> StreamingResponse:
    return content_response(
        request.app.state.store, suites.get(session, tenant=None, suite_id=suite_id)
    )


async def _upload(
    actor: Principal,
    tenant: Tenant | None,
    request: Request,
    response: Response,
    session: SessionDep,
) -> EvalSuiteOut:
    upload_to = partial(suites.upload, session, actor=actor, tenant=tenant)
    return EvalSuiteOut.model_validate(await answer_upload(request, response, upload_to))


def _list(
    session: SessionDep, tenant: Tenant | None, name: str | None, limit: int, offset: int
) -> EvalSuiteList:
    rows = suites.list(session, tenant=tenant, name=name, limit=limit, offset=offset)
    return EvalSuiteList(
        items=[EvalSuiteOut.model_validate(s) for s in rows], limit=limit, offset=offset
    )
