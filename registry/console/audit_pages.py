"""The audit log for ops and auditors (scope audit:read): events filtered by tenant, action and
time, paged by seq; and a verify button that walks the whole chain (with the store's anchors)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit.service import VerifyResult, audit
from registry.dependencies import SessionDep
from registry.errors import NotFound, Unprocessable
from registry.models import AuditEvent, Tenant
from registry.tenants.repository import TenantRepository
from registry.validation_types import INT64_MAX

from .render import ConsoleRoute, page
from .session import PATH, ConsoleCaller, require

router = APIRouter(prefix=PATH, route_class=ConsoleRoute, include_in_schema=False)

AuditRead = Annotated[ConsoleCaller, Depends(require("audit:read"))]
PAGE = 100
DETAILS_CHARS = 400


def parse_when(field: str, value: str | None, *, end: bool = False) -> dt.datetime | None:
    """A date (`2026-12-04`) or a date and time (`2026-12-04T10:30`, with or without an offset);
    naive means UTC. A bare date as `until` means the end of that day."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
            return start + dt.timedelta(days=1) if end else start
        when = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise Unprocessable(
            f"{field}: '{text}' is not a date (2026-12-04) or a date and time (2026-12-04T10:30)"
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _slugs(session: Session, events: Sequence[AuditEvent]) -> dict[uuid.UUID, str]:
    ids = list({e.tenant_id for e in events if e.tenant_id is not None})
    if not ids:
        return {}
    stmt = select(Tenant.id, Tenant.slug).where(Tenant.id.in_(ids))
    return {i: s for i, s in session.execute(stmt)}


def _brief(value: Any) -> str:
    """One detail for the table: scalars as they are, structures as compact JSON, long ones cut
    (the whole event is in the row's title)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:59] + "…"


def _row(event: AuditEvent, slugs: dict[uuid.UUID, str]) -> dict[str, Any]:
    details = event.details if isinstance(event.details, dict) else {}
    reason = details.get("reason")
    rest = {k: v for k, v in details.items() if k != "reason"}
    text = json.dumps(rest, ensure_ascii=False, sort_keys=True, default=str) if rest else ""
    brief = "; ".join(f"{k}: {_brief(v)}" for k, v in sorted(rest.items()))
    return {
        "seq": event.seq,
        "occurred_at": event.occurred_at,
        "actor": event.actor,
        "actor_role": event.actor_role,
        "action": event.action,
        "target": f"{event.target_type} {event.target_id}",
        "tenant": slugs.get(event.tenant_id, str(event.tenant_id)) if event.tenant_id else "",
        "reason": reason if isinstance(reason, str) and reason else None,
        "details": brief if len(brief) <= DETAILS_CHARS else brief[:DETAILS_CHARS] + "…",
        "details_full": text,
    }


def _events_page(
    request: Request,
    session: Session,
    *,
    tenant: str | None,
    action: str | None,
    since: str | None,
    until: str | None,
    after_seq: int,
    verify: VerifyResult | None = None,
) -> HTMLResponse:
    tenant_id = None
    slug = (tenant or "").strip()
    if slug:
        row = TenantRepository(session).get_by_slug(slug)
        if row is None:
            raise NotFound(f"tenant '{slug}' not found")
        tenant_id = row.id
    start = parse_when("since", since)
    stop = parse_when("until", until, end=True)
    if start is not None and stop is not None and stop <= start:
        raise Unprocessable("until: must be after since")
    act = (action or "").strip() or None
    events = audit.list(
        session,
        tenant_id=tenant_id,
        action=act,
        since=start,
        until=stop,
        after_seq=after_seq,
        limit=PAGE + 1,
    )
    more = len(events) > PAGE
    events = events[:PAGE]
    slugs = _slugs(session, events)
    filters = {"tenant": slug, "action": act or "", "since": since or "", "until": until or ""}
    kept = {k: v for k, v in filters.items() if v}
    next_url = f"{PATH}/audit?{urlencode({**kept, 'after_seq': events[-1].seq})}" if more else None
    return page(
        request,
        "audit.html",
        events=[_row(e, slugs) for e in events],
        filters=filters,
        after_seq=after_seq,
        next_url=next_url,
        first_url=f"{PATH}/audit?{urlencode(kept)}" if after_seq else None,
        verify=verify,
        bad_url=(
            f"{PATH}/audit?after_seq={verify.first_bad_seq - 1}"
            if verify is not None and verify.first_bad_seq
            else None
        ),
    )


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    caller: AuditRead,
    session: SessionDep,
    tenant: Annotated[str | None, Query(max_length=100)] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    after_seq: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> HTMLResponse:
    return _events_page(
        request,
        session,
        tenant=tenant,
        action=action,
        since=since,
        until=until,
        after_seq=after_seq,
    )


@router.get("/audit/verify", response_class=HTMLResponse)
def audit_verify(
    request: Request,
    caller: AuditRead,
    session: SessionDep,
    tenant: Annotated[str | None, Query(max_length=100)] = None,
) -> HTMLResponse:
    """Verify every chain (or one tenant's) against the checkpoints and the newest anchor, then
    show the log's first page (that tenant's) under it."""
    slug = (tenant or "").strip() or None
    tenant_id = None
    if slug is not None:
        row = TenantRepository(session).get_by_slug(slug)
        if row is None:
            raise NotFound(f"tenant '{slug}' not found")
        tenant_id = row.id
    result = audit.verify(session, store=request.app.state.store, tenant_id=tenant_id)
    return _events_page(
        request,
        session,
        tenant=slug,
        action=None,
        since=None,
        until=None,
        after_seq=0,
        verify=result,
    )
