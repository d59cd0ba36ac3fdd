from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from registry.adapters.promotion import PromotionPolicy
from registry.adapters.resolve import parse_version
from registry.adapters.schemas import (
    AdapterCreate,
    AdapterList,
    AdapterOut,
    VersionList,
    VersionOut,
)
from registry.adapters.service import adapters
from registry.adapters.upload import MANIFEST_FILE, upload_version
from registry.adapters.versions import versions
from registry.auth import scopes as sc
from registry.dependencies import SessionDep, TenantContext, tenant_access
from registry.errors import NotFound
from registry.evals.jobs import evaluations

router = APIRouter(prefix="/v1/tenants/{tenant}/adapters", tags=["adapters"])

AdaptersRead = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_READ))]
AdaptersWrite = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_WRITE, write=True))]


@router.post("", status_code=201, response_model=AdapterOut)
def create_adapter(
    ctx: AdaptersWrite, body: AdapterCreate, session: SessionDep, request: Request
) -> AdapterOut:
    adapter = adapters.create(
        session,
        actor=ctx.principal,
        tenant=ctx.tenant,
        data=body,
        settings=request.app.state.settings,
    )
    return adapters.to_out(session, [adapter])[0]


@router.get("", response_model=AdapterList)
def list_adapters(
    ctx: AdaptersRead, session: SessionDep, include_archived: bool = False
) -> AdapterList:
    rows = adapters.list(session, tenant=ctx.tenant, include_archived=include_archived)
    return AdapterList(items=adapters.to_out(session, rows))


@router.get("/{name}", response_model=AdapterOut)
def get_adapter(ctx: AdaptersRead, name: str, session: SessionDep) -> AdapterOut:
    return adapters.to_out(session, [adapters.get(session, tenant=ctx.tenant, name=name)])[0]


@router.put("/{name}/promotion-policy", response_model=AdapterOut)
def set_promotion_policy(
    ctx: AdaptersWrite, name: str, body: PromotionPolicy, session: SessionDep
) -> AdapterOut:
    """How a newly trained version gets to `production`: `manual`, or `auto` with a margin."""
    adapter = adapters.set_policy(
        session, actor=ctx.principal, tenant=ctx.tenant, name=name, policy=body
    )
    return adapters.to_out(session, [adapter])[0]


@router.post("/{name}/archive", response_model=AdapterOut)
def archive_adapter(ctx: AdaptersWrite, name: str, session: SessionDep) -> AdapterOut:
    adapter = adapters.archive(session, actor=ctx.principal, tenant=ctx.tenant, name=name)
    return adapters.to_out(session, [adapter])[0]


@router.get("/{name}/versions", response_model=VersionList)
def list_versions(ctx: AdaptersRead, name: str, session: SessionDep) -> VersionList:
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    rows = versions.list(session, adapter=adapter)
    return VersionList(
        items=versions.to_out(session, tenant=ctx.tenant, adapter=adapter, rows=rows)
    )


@router.post("/{name}/versions", status_code=201, response_model=VersionOut)
async def upload_adapter_version(
    ctx: AdaptersWrite, name: str, request: Request, session: SessionDep
) -> VersionOut:
    """Upload an adapter trained elsewhere: multipart files `adapter_config.json` and
    `adapter_model.safetensors`. It is checked against the base model before anything is kept."""
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    version = await upload_version(
        session,
        actor=ctx.principal,
        tenant=ctx.tenant,
        adapter=adapter,
        content_type=request.headers.get("content-type"),
        body=request.stream(),
        store=request.app.state.store,
        settings=request.app.state.settings,
    )
    evaluations.after_upload(
        session,
        actor=ctx.principal,
        tenant=ctx.tenant,
        adapter=adapter,
        version=version,
        settings=request.app.state.settings,
        queue=request.app.state.tasks,
    )
    return versions.to_out(session, tenant=ctx.tenant, adapter=adapter, rows=[version])[0]


@router.get("/{name}/versions/{version}", response_model=VersionOut)
def get_version(ctx: AdaptersRead, name: str, version: str, session: SessionDep) -> VersionOut:
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    row = versions.get(session, adapter=adapter, number=parse_version(version))
    return versions.to_out(session, tenant=ctx.tenant, adapter=adapter, rows=[row])[0]


@router.get(
    "/{name}/versions/{version}/files/{filename}",
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_version_file(
    ctx: AdaptersRead,
    name: str,
    version: str,
    filename: str,
    session: SessionDep,
    request: Request,
) -> StreamingResponse:
    """The artifact's files (`manifest.json` and those it lists), for its own tenant."""
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    row = versions.get(session, adapter=adapter, number=parse_version(version))
    files = (row.manifest or {}).get("files", {})
    if (
        row.status != "ready"
        or row.artifact_prefix is None
        or (filename not in files and filename != MANIFEST_FILE)
    ):
        raise NotFound(f"file '{filename}' not found in version {row.version}")
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if filename in files:
        headers["X-Content-SHA256"] = files[filename]["sha256"]
    else:
        headers["X-Content-SHA256"] = row.manifest_digest or ""
    store = request.app.state.store
    return StreamingResponse(
        store.iter_chunks(f"{row.artifact_prefix}/{filename}"),
        media_type="application/octet-stream",
        headers=headers,
    )
