"""A version's page: status and trigger, the lineage graph with its numbers, manifest digests,
evals against the base model and production, the gate's decision, alias history, who did what
when (audit), serving periods, and a Promote form for those allowed.

A bounded number of statements whatever the adapter's size: the lineage graph's (one per kind
of row for the whole parent chain), then one per section below (see version_queries.py)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from registry.adapters.repository import VersionRepository
from registry.adapters.resolve import parse_version
from registry.adapters.service import adapters
from registry.auth import scopes as sc
from registry.db import utcnow
from registry.dependencies import SessionDep, TenantContext
from registry.errors import NotFound, Unprocessable
from registry.lineage.schemas import LineageGraph
from registry.lineage.service import lineage
from registry.models import AdapterVersion, TrainingJob

from . import version_queries as q
from .lineage_graph import draw
from .render import ConsoleRoute, page, svg
from .session import PATH, Caller, tenant_page
from .svg import bar_chart
from .version_lineage import (
    JobFacts,
    datasets_of,
    duration,
    neighbourhood,
    serving_totals,
    version_url,
)

router = APIRouter(prefix=PATH, route_class=ConsoleRoute, include_in_schema=False)

TenantRead = Annotated[TenantContext, Depends(tenant_page(sc.ADAPTERS_READ))]
FLASH = {"promoted": "Promoted: production now points at this version."}
UNIT_LABEL = {"hour": slice(11, 16), "day": slice(5, 10), "month": slice(0, 7)}


def _number(ref: str) -> int:
    try:
        return parse_version(ref)
    except Unprocessable as exc:  # a page address that names no version is not found
        raise NotFound(exc.detail) from exc


def _job_facts(job: TrainingJob | None) -> tuple[JobFacts | None, dict[str, Any] | None]:
    if job is None:
        return None, None
    seconds = None
    if job.started_at is not None:
        seconds = ((job.finished_at or utcnow()) - job.started_at).total_seconds()
    facts = {
        "id": str(job.id),
        "status": job.status,
        "kind": job.kind,
        "trigger": job.trigger,
        "created_by": job.created_by,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "duration": duration(seconds),
        "attempts": job.attempts,
        "result": job.result or {},
    }
    return JobFacts(status=str(job.status), duration=duration(seconds)), facts


def _trigger_details(v: AdapterVersion) -> list[tuple[str, Any]]:
    """The why of an automatic retrain: the schedule's due time, or the drift that crossed."""
    ref = v.trigger_ref or {}
    out: list[tuple[str, Any]] = []
    if isinstance(ref.get("schedule"), dict):
        s = ref["schedule"]
        out += [
            ("schedule", f"{s.get('cron')} ({s.get('timezone')})"),
            ("due at", ref.get("due_at")),
        ]
    if isinstance(ref.get("drift"), dict):
        d = ref["drift"]
        out += [
            ("drift metric", d.get("metric")),
            ("value", d.get("value")),
            ("threshold", d.get("threshold")),
            ("sample size", d.get("sample_size")),
        ]
    known = {"schedule", "due_at", "drift"}
    out += [(k, v) for k, v in sorted(ref.items()) if k not in known and not isinstance(v, dict)]
    return out


def _parent(g: LineageGraph) -> tuple[int | None, int]:
    """The parent's number and how many ancestors the chain holds."""
    nodes = {n.id: n for n in g.nodes}
    ancestors = sum(1 for n in g.nodes if n.type == "adapter_version") - 1
    for e in g.edges:
        if e.source == g.root and e.relation == "wasDerivedFrom" and e.target in nodes:
            return int(nodes[e.target].attrs["version"]), ancestors
    return None, ancestors


def _serving(
    session: Any, g: LineageGraph, tenant_id: Any, v: AdapterVersion
) -> dict[str, Any] | None:
    totals = serving_totals(g)
    if not totals:
        return None
    first, last = totals["first_request_at"], totals["last_request_at"]
    unit, buckets = q.usage_buckets(session, tenant_id, v.id, first, last)
    cut = UNIT_LABEL[unit]
    bars = [(label[cut], float(requests)) for label, requests, _, _ in buckets]
    tokens = [(label[cut], float(t)) for label, _, _, t in buckets]
    return {
        **totals,
        "unit": unit,
        "buckets": buckets,
        "requests_chart": svg(bar_chart(bars, title=f"requests per {unit}", height=150)),
        "tokens_chart": svg(
            bar_chart(tokens, title=f"tokens per {unit}", height=150, color="#16a085")
        ),
    }


@router.get("/t/{tenant}/adapters/{name}/v/{version}", response_class=HTMLResponse)
def version_page(
    request: Request,
    name: str,
    version: str,
    ctx: TenantRead,
    session: SessionDep,
    caller: Caller,
) -> HTMLResponse:
    number = _number(version)
    tenant = ctx.tenant
    adapter = adapters.get(session, tenant=tenant, name=name)
    row = VersionRepository(session, tenant.id).get(adapter.id, number)
    if row is None:
        raise NotFound(f"version {number} of adapter '{adapter.name}' not found")
    graph = lineage.graph(session, tenant=tenant, name=name, ref=str(number))
    parent, ancestors = _parent(graph)
    job_box, job = _job_facts(q.training_job(session, tenant.id, row.job_id))
    boxes, links = neighbourhood(graph, tenant=tenant.slug, job=job_box, ancestors=ancestors)
    lineage_svg = svg(draw(boxes, links, title=f"lineage of {adapter.name}@v{number}"))

    current = q.current_aliases(session, tenant.id, adapter.id)
    production = next(((n, vid) for a, n, vid in current if a == "production"), None)
    numbers = {row.id: number, **{vid: n for _, n, vid in current}}
    if row.parent_id is not None and parent is not None:
        numbers[row.parent_id] = parent
    wanted = {row.id, *(x for x in (row.parent_id, production[1] if production else None) if x)}
    evals = q.evals_of(session, tenant.id, sorted(wanted, key=str))
    table = q.eval_table(
        evals,
        version_id=row.id,
        number=number,
        numbers=numbers,
        production_id=production[1] if production else None,
    )
    history, history_cut = q.alias_history(session, tenant.id, adapter.id)
    audit = None
    if caller.can(sc.AUDIT_READ):
        names = {e.alias for e in history} | {a for a, _, _ in current}
        audit = q.audit_events(
            session,
            tenant.id,
            aliases=sorted(f"{adapter.name}@{a}" for a in names),
            version=f"{adapter.name}@v{number}",
            job_id=row.job_id,
            eval_ids=[str(e.id) for e in evals if e.version_id == row.id],
        )
    files = sorted(((row.manifest or {}).get("files") or {}).items())
    here = f"{PATH}/t/{quote(tenant.slug)}/adapters/{quote(adapter.name)}"
    return page(
        request,
        "version.html",
        tenant=tenant,
        adapter=adapter,
        v=row,
        number=number,
        here=here,
        parent=parent,
        parent_url=version_url(tenant.slug, adapter.name, parent) if parent else "",
        ancestors=ancestors,
        trigger_details=_trigger_details(row),
        job=job,
        lineage_svg=lineage_svg,
        datasets=datasets_of(graph),
        files=files,
        evals=table,
        gate=row.gate,
        aliases=[(a, n) for a, n, _ in current],
        is_production=production is not None and production[1] == row.id,
        history=history,
        history_cut=history_cut,
        history_cap=q.HISTORY_CAP,
        audit=audit,
        audit_cap=q.AUDIT_CAP,
        serving=_serving(session, graph, tenant.id, row),
        can_promote=caller.can(sc.ADAPTERS_WRITE) and row.status == "ready",
        flash=FLASH.get(request.query_params.get("done", "")),
    )
