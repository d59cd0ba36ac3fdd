"""Platform datasets: ops' rehearsal data, never readable by tenants.

Tenants (base_models:read) may list them and read their metadata, so that a base model's
rehearsal set can be named and checked; the rows themselves (`/content`) are for ops only
(base_models:write). Tenants see a rehearsal set's name, version and digest in lineage.
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from registry.auth import scopes as sc
from registry.auth.principal import Principal
from registry.datasets.endpoints import UPLOAD_DOC, content_response
from registry.datasets.schemas import DatasetList, DatasetOut
from registry.datasets.service import datasets
from registry.dependencies import SessionDep, require_scope
from registry.owned import answer_upload
from registry.validation_types import INT64_MAX

router = APIRouter(prefix="/v1/platform/datasets", tags=["platform datasets"])

PlatformRead = Annotated[Principal, Depends(require_scope(sc.BASE_MODELS_READ))]
PlatformWrite = Annotated[Principal, Depends(require_scope(sc.BASE_MODELS_WRITE))]


@router.post("", status_code=201, response_model=DatasetOut, **UPLOAD_DOC)
async def upload_platform_dataset(
    principal: PlatformWrite, request: Request, response: Response, session: SessionDep
) -> DatasetOut:
    """Upload a JSONL file as a new platform dataset version (ops: rehearsal data). Validated
    like a tenant's dataset; bounded by the upload limit, not by a tenant's quota."""
    upload_to = partial(datasets.upload, session, actor=principal, tenant=None)
    return DatasetOut.model_validate(await answer_upload(request, response, upload_to))


@router.get("", response_model=DatasetList)
def list_platform_datasets(
    principal: PlatformRead,
    session: SessionDep,
    name: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> DatasetList:
    rows = datasets.list(session, tenant=None, name=name, limit=limit, offset=offset)
    return DatasetList(
        items=[DatasetOut.model_validate(d) for d in rows], limit=limit, offset=offset
    )


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_platform_dataset(
    principal: PlatformRead, dataset_id: uuid.UUID, session: SessionDep
) -> DatasetOut:
    """A platform dataset's metadata (name, version, digest, counts); never its rows."""
    return DatasetOut.model_validate(datasets.get(session, tenant=None, dataset_id=dataset_id))


@router.get("/{dataset_id}/content", responses={200: {"content": {"application/x-ndjson": {}}}})
def download_platform_dataset(
    principal: PlatformWrite, dataset_id: uuid.UUID, session: SessionDep, request: Request
) -> StreamingResponse:
    """The stored rows, for ops only (base_models:write): tenants never read rehearsal rows."""
    dataset = datasets.get(session, tenant=None, dataset_id=dataset_id)
    return content_response(request.app.state.store, dataset)
