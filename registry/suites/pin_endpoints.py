"""The eval suites pinned to an adapter."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from registry.auth import scopes as sc
from registry.dependencies import SessionDep, TenantContext, tenant_access
from registry.models import EvalSuite
from registry.suites.pin_schemas import PinnedSuiteOut, SuitePinsIn, SuitePinsOut
from registry.suites.pins import suite_pins

router = APIRouter(prefix="/v1/tenants/{tenant}/adapters/{name}", tags=["eval suites"])

AdaptersRead = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_READ))]
AdaptersWrite = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_WRITE, write=True))]


def _out(suites: list[EvalSuite]) -> SuitePinsOut:
    return SuitePinsOut(suites=[PinnedSuiteOut.model_validate(s) for s in suites])


@router.put("/eval-suites", response_model=SuitePinsOut)
def set_pinned_suites(
    name: str, body: SuitePinsIn, ctx: AdaptersWrite, session: SessionDep
) -> SuitePinsOut:
    """Replace the suites every version of this adapter is scored on (this tenant's suites;
    `version` null pins the latest version now)."""
    suites = suite_pins.set(
        session, actor=ctx.principal, tenant=ctx.tenant, adapter_name=name, refs=body.suites
    )
    return _out(suites)


@router.get("/eval-suites", response_model=SuitePinsOut)
def get_pinned_suites(name: str, ctx: AdaptersRead, session: SessionDep) -> SuitePinsOut:
    """The pinned suites, in order."""
    return _out(suite_pins.get(session, tenant=ctx.tenant, adapter_name=name))
