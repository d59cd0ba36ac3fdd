"""Training jobs: every tenant's (ops, auditors), one tenant's, a job's page with its live part
(progress, loss curves, events; console.js refreshes it until the job is finished), and the
cancel form."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from registry.auth import scopes as sc
from registry.dependencies import SessionDep, TenantContext
from registry.errors import Forbidden, NotFound, Unprocessable
from registry.models import TrainingJob
from registry.models.enums import JobStatus
from registry.training.repository import PlatformJobRepository
from registry.training.schemas import FINISHED
from registry.training.service import training

from . import job_queries as queries
from .render import ConsoleRoute, page, svg
from .session import PATH, Caller, tenant_form, tenant_page
from .svg import Series, line_chart
from .tenant_adapter import facts

router = APIRouter(prefix=PATH, route_class=ConsoleRoute, include_in_schema=False)

LIMIT = 200  # jobs a list shows
REASON = (3, 500)  # characters a cancel reason must have
LIVE_MS = 1500  # how often console.js refreshes a running job's live part
FLASH = {"cancelled": "Cancel requested: the reason is in the job's events and the audit log."}

TenantRead = Annotated[TenantContext, Depends(tenant_page(sc.ADAPTERS_READ))]
TrainingForm = Annotated[TenantContext, Depends(tenant_form(sc.TRAINING_WRITE))]


def _status(value: str) -> str | None:
    if not value:
        return None
    if value not in {s.value for s in JobStatus}:
        known = ", ".join(s.value for s in JobStatus)
        raise Unprocessable(f"status: '{value}' is not a job status; one of {known}")
    return value


def _rows(session: Any, jobs: Sequence[TrainingJob]) -> list[tuple[TrainingJob, Any]]:
    labels = PlatformJobRepository(session).labels(jobs)
    return [(j, labels.get(j.id)) for j in jobs]


@router.get("/jobs", response_class=HTMLResponse)
def all_jobs(request: Request, session: SessionDep, caller: Caller, status: str = "") -> Response:
    """Ops and auditors: every tenant's jobs, newest first; a tenant goes to its own list."""
    if caller.is_tenant:
        if caller.tenant_slug is None:
            raise NotFound("Your tenant no longer exists.")
        return RedirectResponse(f"{PATH}/t/{quote(caller.tenant_slug)}/jobs", status_code=303)
    if not caller.can(sc.ADAPTERS_READ):
        raise Forbidden(f"Your client lacks the '{sc.ADAPTERS_READ}' scope.")
    wanted = _status(status)
    jobs = training.list_all(session, status=wanted, tenant=None, limit=LIMIT + 1)
    return page(
        request,
        "jobs.html",
        tenant=None,
        rows=_rows(session, jobs[:LIMIT]),
        cut=len(jobs) > LIMIT,
        limit=LIMIT,
        status=wanted or "",
        statuses=[s.value for s in JobStatus],
    )


@router.get("/t/{tenant}/jobs", response_class=HTMLResponse)
def tenant_jobs(
    request: Request, ctx: TenantRead, session: SessionDep, status: str = ""
) -> Response:
    wanted = _status(status)
    jobs = training.list(session, tenant=ctx.tenant, status=wanted, adapter=None, limit=LIMIT + 1)
    return page(
        request,
        "jobs.html",
        tenant=ctx.tenant,
        rows=_rows(session, jobs[:LIMIT]),
        cut=len(jobs) > LIMIT,
        limit=LIMIT,
        status=wanted or "",
        statuses=[s.value for s in JobStatus],
    )


def _job(session: Any, ctx: TenantContext, job_id: str) -> TrainingJob:
    try:
        parsed = uuid.UUID(job_id)
    except ValueError:
        raise NotFound(f"training job '{job_id}' not found") from None
    return training.get(session, tenant=ctx.tenant, job_id=parsed)  # another tenant's: 404


def _live(session: Any, job: TrainingJob) -> dict[str, Any]:
    """What the live part shows: progress, the loss curves, the newest events."""
    progress = job.progress or {}
    curves = queries.curves(session, job)
    # The progress record is written less often than the metrics: the chart's last step counts.
    charted = max((int(x) for x, _ in curves.train), default=0)
    step, total = max(int(progress.get("step") or 0), charted), progress.get("total_steps")
    chart = line_chart(
        [
            Series("train loss", curves.train),
            Series("held-out eval loss", curves.heldout, dashed=True),
        ],
        title="Loss by step",
        x_label="step",
    )
    events, total_events = queries.events(session, job)
    return {
        "progress": progress,
        "step": step,
        "total": total,
        "finished": job.status in FINISHED,
        "chart": svg(chart),
        "curves": curves,
        "events": events,
        "total_events": total_events,
    }


def _context(session: Any, ctx: TenantContext, job: TrainingJob) -> dict[str, Any]:
    label = PlatformJobRepository(session).labels([job]).get(job.id)
    slug = quote(ctx.tenant.slug, safe="")
    return {
        "tenant": ctx.tenant,
        "job": job,
        "label": label,
        "t": slug,
        "here": f"{PATH}/t/{slug}/jobs/{job.id}",
        **_live(session, job),
    }


@router.get("/t/{tenant}/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, ctx: TenantRead, job_id: str, session: SessionDep) -> Response:
    job = _job(session, ctx, job_id)
    caller = request.state.console
    cancellable = job.status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED)
    return page(
        request,
        "job.html",
        datasets=queries.datasets(session, job),
        config=facts(job.config or {}, ("rank", "alpha", "learning_rate", "epochs")),
        can_cancel=cancellable
        and caller.can(sc.TRAINING_WRITE)
        and not ctx.tenant.disabled
        and not job.cancel_requested,
        live_ms=LIVE_MS,
        flash=FLASH.get(request.query_params.get("done", "")),
        **_context(session, ctx, job),
    )


@router.get("/t/{tenant}/jobs/{job_id}/live", response_class=HTMLResponse)
def job_live(request: Request, ctx: TenantRead, job_id: str, session: SessionDep) -> Response:
    """The fragment inside `#live`; `X-Live-Done: 1` once the job is finished."""
    job = _job(session, ctx, job_id)
    context = _context(session, ctx, job)
    response = page(request, "job_live.html", **context)
    if context["finished"]:
        response.headers["X-Live-Done"] = "1"
    return response


@router.post("/t/{tenant}/jobs/{job_id}/cancel")
def cancel(
    request: Request,
    ctx: TrainingForm,
    job_id: str,
    session: SessionDep,
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Cancel with a reason (into the job's events and the audit log), then the job page."""
    text = reason.strip()
    if not REASON[0] <= len(text) <= REASON[1]:
        raise Unprocessable(
            f"reason: give a reason of {REASON[0]} to {REASON[1]} characters "
            "(it goes into the audit log)"
        )
    job = _job(session, ctx, job_id)
    training.cancel(
        session,
        actor=ctx.principal,
        tenant=ctx.tenant,
        job_id=job.id,
        store=getattr(request.app.state, "store", None),
        reason=text,
    )
    target = f"{PATH}/t/{quote(ctx.tenant.slug, safe='')}/jobs/{job.id}?done=cancelled"
    return RedirectResponse(target, status_code=303)
