"""`/v1/files`: OpenAI's Files API over dataset versions (registry/finetuning/files.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from registry.auth import scopes as sc
from registry.dependencies import SessionDep, TenantContext
from registry.finetuning.deps import tenant_caller
from registry.finetuning.errors import OpenAIRoute
from registry.finetuning.files import Order, files
from registry.finetuning.files_schemas import FileDeleted, FileList, FileObject

router = APIRouter(route_class=OpenAIRoute)

FilesRead = Annotated[TenantContext, Depends(tenant_caller(sc.DATASETS_READ))]
FilesWrite = Annotated[TenantContext, Depends(tenant_caller(sc.DATASETS_WRITE, write=True))]

UPLOAD_DOC: dict[str, Any] = {
    "responses": {
        413: {"description": "over the upload limit or the tenant's dataset quota"},
    },
    "openapi_extra": {
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "purpose"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "purpose": {"type": "string", "enum": ["fine-tune"]},
                        },
                    }
                }
            }
        }
    },
}


@router.post("/v1/files", response_model=FileObject, **UPLOAD_DOC)
async def create_file(ctx: FilesWrite, request: Request, session: SessionDep) -> FileObject:
    """Upload a JSONL training file. Rows failing validation give `status: "error"` and a
    `status_details` naming the line (nothing stored); limits and quota are HTTP errors."""
    row = await files.upload(
        session,
        actor=ctx.principal,
        tenant=ctx.tenant,
        content_type=request.headers.get("content-type"),
        body=request.stream(),
        store=request.app.state.store,
        settings=request.app.state.settings,
    )
    return FileObject.of(row)


@router.get("/v1/files", response_model=FileList)
def list_files(
    ctx: FilesRead,
    session: SessionDep,
    purpose: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    order: Order = "desc",
    after: Annotated[str | None, Query(max_length=100)] = None,
) -> FileList:
    rows, more = files.list(
        session, tenant=ctx.tenant, purpose=purpose, limit=limit, order=order, after=after
    )
    data = [FileObject.of(r) for r in rows]
    return FileList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=more,
    )


@router.get("/v1/files/{file_id}", response_model=FileObject)
def retrieve_file(ctx: FilesRead, session: SessionDep, file_id: str) -> FileObject:
    return FileObject.of(files.get(session, tenant=ctx.tenant, file_id=file_id))


@router.get("/v1/files/{file_id}/content", responses={200: {"content": {"application/jsonl": {}}}})
def file_content(
    ctx: FilesRead, session: SessionDep, file_id: str, request: Request
) -> StreamingResponse:
    """A training file's stored rows (duplicates and blank lines dropped), or a result CSV."""
    got = files.content(session, tenant=ctx.tenant, store=request.app.state.store, file_id=file_id)
    headers = {"Content-Disposition": f'attachment; filename="{got.filename}"'}
    if got.size is not None:
        headers["Content-Length"] = str(got.size)
    return StreamingResponse(got.chunks, media_type=got.media_type, headers=headers)


@router.delete("/v1/files/{file_id}", response_model=FileDeleted)
def delete_file(ctx: FilesWrite, session: SessionDep, file_id: str) -> FileDeleted:
    """Hide the file; its dataset version stays (lineage of what was trained on it)."""
    gone = files.delete(session, actor=ctx.principal, tenant=ctx.tenant, file_id=file_id)
    return FileDeleted(id=gone)
