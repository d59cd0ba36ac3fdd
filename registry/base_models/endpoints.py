from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from registry.auth import scopes as sc
from registry.auth.principal import Principal
from registry.base_models.schemas import (
    BaseModelCreate,
    BaseModelEvalsIn,
    BaseModelOut,
    base_model_out,
)
from registry.base_models.service import base_models
from registry.dependencies import SessionDep, require_scope
from registry.models import BaseModel

router = APIRouter(prefix="/v1/base-models", tags=["base models"])

BaseModelsRead = Annotated[Principal, Depends(require_scope(sc.BASE_MODELS_READ))]
BaseModelsWrite = Annotated[Principal, Depends(require_scope(sc.BASE_MODELS_WRITE))]


def _out(session: SessionDep, model: BaseModel, principal: Principal) -> BaseModelOut:
    suite, rehearsal = base_models.evals_of(session, model)
    return base_model_out(model, principal, general_suite=suite, rehearsal=rehearsal)


@router.post("", status_code=201, response_model=BaseModelOut)
def register_base_model(
    body: BaseModelCreate, principal: BaseModelsWrite, session: SessionDep, request: Request
) -> BaseModelOut:
    """Register a shared base model; the registry reads its config and weight headers."""
    model = base_models.register(
        session, actor=principal, data=body, settings=request.app.state.settings
    )
    return _out(session, model, principal)


@router.get("", response_model=list[BaseModelOut])
def list_base_models(principal: BaseModelsRead, session: SessionDep) -> list[BaseModelOut]:
    return [_out(session, m, principal) for m in base_models.list(session)]


@router.get("/{name}", response_model=BaseModelOut)
def get_base_model(name: str, principal: BaseModelsRead, session: SessionDep) -> BaseModelOut:
    return _out(session, base_models.get(session, name=name), principal)


@router.put("/{name}/evals", response_model=BaseModelOut)
def set_base_model_evals(
    name: str, body: BaseModelEvalsIn, principal: BaseModelsWrite, session: SessionDep
) -> BaseModelOut:
    """Set the guard against forgetting: the platform suite every candidate is scored on, the
    tolerance below the base model's score, and the platform rows mixed into training."""
    model = base_models.set_evals(session, actor=principal, name=name, data=body)
    return _out(session, model, principal)
