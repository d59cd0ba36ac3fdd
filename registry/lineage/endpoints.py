from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from registry.auth import scopes as sc
from registry.dependencies import SessionDep, TenantContext, tenant_access
from registry.lineage.prov import to_prov
from registry.lineage.schemas import LineageFormat, LineageGraph, ProvDocument
from registry.lineage.service import lineage

router = APIRouter(prefix="/v1/tenants/{tenant}/adapters/{name}/versions", tags=["lineage"])

AdaptersRead = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_READ))]

GRAPH_OR_PROV: dict[str, Any] = {
    "description": "The graph; with ?format=prov, W3C PROV-JSON of the same"
}


# Both shapes are declared (anyOf), so clients and schema checks accept the PROV answer too.
@router.get(
    "/{version}/lineage",
    response_model=LineageGraph | ProvDocument,
    responses={200: GRAPH_OR_PROV},
)
def version_lineage(
    ctx: AdaptersRead,
    name: str,
    version: str,
    session: SessionDep,
    fmt: Annotated[LineageFormat, Query(alias="format", description="graph or prov")] = "graph",
) -> LineageGraph | JSONResponse:
    """Datasets, base model, job, evals, alias moves and creators of a version and of each of
    its ancestors (`version` is 7 or v7). Auditors may read any tenant's; a tenant its own."""
    graph = lineage.graph(session, tenant=ctx.tenant, name=name, ref=version)
    if fmt == "prov":
        return JSONResponse(to_prov(graph))
    return graph
