from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from registry.adapters.resolve import parse_version
from registry.adapters.service import adapters
from registry.auth import scopes as sc
from registry.dependencies import SessionDep, TenantContext, tenant_access
from registry.evals.jobs import evaluations
from registry.evals.leaderboard import Leaderboard, leaderboard
from registry.evals.schemas import Comparison, EvalCreate, EvalOut
from registry.evals.service import evals
from registry.training.schemas import TrainingJobOut
from registry.training.service import training
from registry.validation_types import INT64_MAX

router = APIRouter(prefix="/v1/tenants/{tenant}/adapters/{name}", tags=["evals"])

AdaptersRead = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_READ))]
AdaptersWrite = Annotated[TenantContext, Depends(tenant_access(sc.ADAPTERS_WRITE, write=True))]
TrainingWrite = Annotated[TenantContext, Depends(tenant_access(sc.TRAINING_WRITE, write=True))]


@router.post("/versions/{version}/evals", status_code=201, response_model=EvalOut)
def record_eval(
    ctx: AdaptersWrite, name: str, version: str, body: EvalCreate, session: SessionDep
) -> EvalOut:
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    number = parse_version(version)
    row = evals.record(
        session, actor=ctx.principal, tenant=ctx.tenant, adapter=adapter, number=number, data=body
    )
    return evals.to_out(row, number)


@router.get("/versions/{version}/evals", response_model=list[EvalOut])
def list_evals(ctx: AdaptersRead, name: str, version: str, session: SessionDep) -> list[EvalOut]:
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    number = parse_version(version)
    rows = evals.list(session, adapter=adapter, number=number)
    return [evals.to_out(r, number) for r in rows]


@router.get("/versions/{version}/compare", response_model=Comparison)
def compare_versions(
    ctx: AdaptersRead,
    name: str,
    version: str,
    session: SessionDep,
    with_: Annotated[str, Query(alias="with", description="a version (v5) or 'base'")],
) -> Comparison:
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    return evals.compare(session, adapter=adapter, a=parse_version(version), b=with_)


@router.post("/versions/{version}/evaluate", status_code=202, response_model=TrainingJobOut)
def evaluate_version(
    ctx: TrainingWrite, name: str, version: str, session: SessionDep, request: Request
) -> TrainingJobOut:
    """Queue a job that scores this version on the adapter's eval suites and the base model's
    general suite (and the base model and production, where they have no score yet)."""
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    job = evaluations.create(
        session,
        actor=ctx.principal,
        tenant=ctx.tenant,
        adapter=adapter,
        number=parse_version(version),
        settings=request.app.state.settings,
        queue=request.app.state.tasks,
    )
    return training.to_out(session, [job], with_events=True)[0]


@router.get("/leaderboard", response_model=Leaderboard)
def get_leaderboard(
    ctx: AdaptersRead,
    name: str,
    session: SessionDep,
    suite: Annotated[
        str | None,
        Query(
            max_length=100,
            description="a pinned suite's name (default: the first pinned), or 'general'",
        ),
    ] = None,
    suite_version: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
    details: bool = False,
) -> Leaderboard:
    """Every version, the base model and the aliases, scored on one suite version."""
    adapter = adapters.get(session, tenant=ctx.tenant, name=name)
    return leaderboard(
        session, adapter=adapter, suite=suite, version=suite_version, details=details
    )
