"""`/v1/models`: list, retrieve, delete (registry/finetuning/models.py), in OpenAI's shapes.

`{model:path}`: a fine-tuned model's name holds `:`, and an adapter alias form `@`; both are
taken as they are. List and retrieve take the `inference` scope (what the gateway has always
asked for its list); delete `adapters:write`, since it changes what the tenant can serve."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from registry.auth.scopes import ADAPTERS_WRITE, INFERENCE
from registry.dependencies import SessionDep, TenantContext
from registry.finetuning import models
from registry.finetuning.deps import tenant_caller
from registry.finetuning.errors import OpenAIRoute

router = APIRouter(route_class=OpenAIRoute)


class Model(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str  # "loraplex" for a base model, else your tenant's slug


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[Model]


class ModelDeleted(BaseModel):
    id: str
    object: Literal["model"]
    deleted: bool


Reader = Annotated[TenantContext, Depends(tenant_caller(INFERENCE))]
Writer = Annotated[TenantContext, Depends(tenant_caller(ADAPTERS_WRITE, write=True))]


@router.get("/v1/models", response_model=ModelList, summary="The models your token may name")
def list_models(session: SessionDep, ctx: Reader) -> dict[str, Any]:
    """Base models, your adapters ('name' at production, 'name@alias'), your fine-tuned models
    and their checkpoints."""
    return {"object": "list", "data": models.list_models(session, tenant=ctx.tenant)}


@router.get("/v1/models/{model:path}", response_model=Model, summary="One model")
def retrieve_model(model: str, session: SessionDep, ctx: Reader) -> dict[str, Any]:
    return models.retrieve(session, tenant=ctx.tenant, model=model)


@router.delete(
    "/v1/models/{model:path}", response_model=ModelDeleted, summary="Delete a fine-tuned model"
)
def delete_model(model: str, session: SessionDep, ctx: Writer) -> dict[str, Any]:
    """Its name and its checkpoints' stop resolving; the version stays in the registry."""
    return models.delete(session, actor=ctx.principal, tenant=ctx.tenant, model=model)
