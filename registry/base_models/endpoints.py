from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from registry.auth import scopes as sc
from registry.auth.principal import Principal
from registry.base_models.schemas import BaseModelCreate, BaseModelOut, base_model_out
from registry.base_models.service import base_models
from registry.dependencies import SessionDep, require_scope

router = APIRouter(prefix="/v1/base-models", tags=["base models"])

BaseModelsRead = Annotated[Principal, Depends(require_scope(sc.BASE_MODELS_READ))]
BaseModelsWrite = Annotated[Principal, Depends(require_scope(sc.BASE_MODELS_WRITE))]


@router.post("", status_code=201, response_model=BaseModelOut)
def register_base_model(
    body: BaseModelCreate, principal: BaseModelsWrite, session: SessionDep, request: Request
) -> BaseModelOut:
    """Register a shared base model; the registry reads its config and weight headers."""
    model = base_models.register(
        session, actor=principal, data=body, settings=request.app.state.settings
    )
    return base_model_out(model, principal)


@router.get("", response_model=list[BaseModelOut])
def list_base_models(principal: BaseModelsRead, session: SessionDep) -> list[BaseModelOut]:
    return [base_model_out(m, principal) for m in base_models.list(session)]


@router.get("/{name}", response_model=BaseModelOut)
def get_base_model(name: str, principal: BaseModelsRead, session: SessionDep) -> BaseModelOut:
    return base_model_out(base_models.get(session, name=name), principal)
