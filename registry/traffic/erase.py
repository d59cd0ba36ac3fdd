"""Erasure and listing of a tenant's captured traffic.

Erasure deletes the rows (prompts and traces), all the feedback, and every object under the
tenant's (or the adapter's) trace prefix, listed from the store: objects go even when their
rows are already gone. The rows are deleted first, in the request's transaction; if the store
fails, the transaction rolls back and the call can be repeated.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence

import structlog
from sqlalchemy.orm import Session

from registry.adapters.service import adapters
from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.errors import Unprocessable
from registry.models import Tenant
from registry.models.enums import CaptureMode
from registry.storage import ObjectStore
from registry.traffic.capture_schemas import EraseOut, FeedbackView, TraceOut, TracePage
from registry.traffic.repository import TraceQuery, TrafficRepository
from registry.traffic.traces import read_traces, tenant_trace_prefix, trace_prefix

log = structlog.get_logger(__name__)


def erase_traffic(
    session: Session,
    *,
    actor: Principal,
    tenant: Tenant,
    adapter_name: str | None,
    store: ObjectStore,
) -> EraseOut:
    repo = TrafficRepository(session, tenant.id)
    if adapter_name is not None:
        adapter = adapters.get(session, tenant=tenant, name=adapter_name)
        adapter_id, prefix = adapter.id, trace_prefix(tenant.id, adapter.id)
    else:
        adapter_id, prefix = None, tenant_trace_prefix(tenant.id)
    rows = repo.erase_samples(adapter_id)
    feedback = repo.erase_feedback(adapter_id)
    session.flush()
    objects = 0
    for key in list(store.list_keys(prefix)):
        store.delete(key)
        objects += 1
    out = EraseOut(
        tenant=tenant.slug, adapter=adapter_name, rows=rows, feedback=feedback, objects=objects
    )
    audit.record(
        session,
        actor=actor,
        action="traffic.erase",
        target_type="adapter" if adapter_id else "tenant",
        target_id=str(adapter_id or tenant.id),
        tenant_id=tenant.id,
        details=out.model_dump(),
    )
    log.info("traffic.erased", **out.model_dump())
    return out


def list_traces(
    session: Session,
    *,
    tenant: Tenant,
    store: ObjectStore,
    adapter_name: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    ratings: Sequence[int] | None,
    captured: CaptureMode | None,
    limit: int,
    cursor: str | None,
) -> TracePage:
    adapter_id = None
    if adapter_name is not None:
        adapter_id = adapters.get(session, tenant=tenant, name=adapter_name).id
    query = TraceQuery(
        adapter_id=adapter_id,
        since=since,
        until=until,
        ratings=ratings,
        captured=captured,
        before=_decode_cursor(cursor) if cursor else None,
        limit=limit + 1,
    )
    rows = TrafficRepository(session, tenant.id).traces(query)
    more, rows = len(rows) > limit, rows[:limit]
    where = [(r.sample.object_key, r.sample.object_line) for r in rows if r.sample.object_key]
    found = dict(read_traces(store, [(k, line or 0) for k, line in where]))
    items = []
    for r in rows:
        s, fb = r.sample, r.feedback
        location = (s.object_key, s.object_line or 0) if s.object_key else None
        items.append(
            TraceOut(
                id=s.id,
                request_id=s.request_id,
                adapter=r.adapter,
                version=r.version,
                captured=s.captured,
                source=s.source.value,
                created_at=s.created_at,
                redactions=s.redactions or {},
                record=s.record,
                trace=found.get(location) if location else None,
                feedback=None
                if fb is None
                else FeedbackView(
                    rating=fb.rating,
                    corrected=bool(fb.correction),
                    correction=fb.correction,
                    comment=fb.comment,
                    redactions=fb.redactions or {},
                    created_by=fb.created_by,
                    updated_at=fb.updated_at,
                ),
            )
        )
    last = rows[-1].sample if rows and more else None
    cursor = _encode_cursor(last.created_at, last.id) if last else None
    return TracePage(items=items, next_cursor=cursor)


def _encode_cursor(at: dt.datetime, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{row_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[dt.datetime, int]:
    try:
        at, _, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        when = dt.datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError(at)
        return when, int(row_id)
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise Unprocessable("cursor is not one this API returned; start without it") from exc
