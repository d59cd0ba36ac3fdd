from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from registry.auth import scopes as sc
from registry.datasets.repository import dataset_out_row
from registry.datasets.schemas import DatasetList, DatasetOut
from registry.datasets.service import datasets
from registry.dependencies import (
    SessionDep,
    TenantContext,
    TenantRead,
    tenant_access,
    tenant_read,
)
from registry.errors import NotFound
from registry.models import Dataset, EvalSuite
from registry.owned import answer_upload
from registry.storage import ObjectStore
from registry.validation_types import INT64_MAX

router = APIRouter(prefix="/v1/tenants/{tenant}/datasets", tags=["datasets"])

# The upload's documented answers and multipart body (shared with platform datasets).
UPLOAD_DOC: dict[str, Any] = {
    "responses": {
        200: {"description": "the same name already holds exactly this content"},
        413: {"description": "over the upload limit or the tenant's dataset quota"},
        422: {"description": "invalid file; `report` has counts and the first errors by line"},
    },
    "openapi_extra": {
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["name", "file"],
                        "properties": {
                            "name": {"type": "string"},
                            "file": {"type": "string", "format": "binary"},
                        },
                    }
                }
            }
        }
    },
}

DatasetsRead = Annotated[TenantContext, Depends(tenant_access(sc.DATASETS_READ))]
DatasetsWrite = Annotated[TenantContext, Depends(tenant_access(sc.DATASETS_WRITE, write=True))]
DatasetsReadOnce = Annotated[TenantRead, Depends(tenant_read(sc.DATASETS_READ))]


@router.post("", status_code=201, response_model=DatasetOut, **UPLOAD_DOC)
async def upload_dataset(
    ctx: DatasetsWrite, request: Request, response: Response, session: SessionDep
) -> DatasetOut:
    """Upload a JSONL file (chat `messages` or `prompt`/`completion`) as a new dataset version."""
    upload_to = partial(datasets.upload, session, actor=ctx.principal, tenant=ctx.tenant)
    return DatasetOut.model_validate(await answer_upload(request, response, upload_to))


@router.get("", response_model=DatasetList)
def list_datasets(
    ctx: DatasetsRead,
    session: SessionDep,
    name: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> DatasetList:
    rows = datasets.list(session, tenant=ctx.tenant, name=name, limit=limit, offset=offset)
    return DatasetList(
        items=[DatasetOut.model_validate(d) for d in rows], limit=limit, offset=offset
    )


@router.get("/{dataset_id}", response_model=DatasetOut)
async def get_dataset(read: DatasetsReadOnce, dataset_id: uuid.UUID) -> Response:
    """A hot read: one statement in one thread hop (`TenantRead`), serialized by pydantic."""

    def work(session: Session) -> bytes:
        row = dataset_out_row(session, read.visible(), dataset_id)
        read.check(row.tenant_id if row else None)
        if row is None or row.id is None:
            raise NotFound(f"dataset '{dataset_id}' not found")
        return DatasetOut.model_validate(row).model_dump_json().encode()

    return Response(await read.run(work), media_type="application/json")


@router.get("/{dataset_id}/content", responses={200: {"content": {"application/x-ndjson": {}}}})
def download_dataset(
    ctx: DatasetsRead, dataset_id: uuid.UUID, session: SessionDep, request: Request
) -> StreamingResponse:
    dataset = datasets.get(session, tenant=ctx.tenant, dataset_id=dataset_id)
    return content_response(request.app.state.store, dataset)


def content_response(store: ObjectStore, dataset: Dataset | EvalSuite) -> StreamingResponse:
    """The stored rows of a dataset or an eval suite as a download, with their digest for the
    client to check."""
    filename = f"{dataset.name}-v{dataset.version}.jsonl"
    return StreamingResponse(
        store.iter_chunks(dataset.object_key),
        media_type="application/x-ndjson",
        headers={
            "Content-Length": str(dataset.bytes),
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-SHA256": dataset.sha256,
            "ETag": f'"{dataset.sha256}"',
        },
    )
