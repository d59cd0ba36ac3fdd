"""A fine-tuning job's events in OpenAI's shape, newest first, with `ftevent-<row id>` ids that
work as the `after` cursor (`after=ftevent-N`: events older than N).

Levels: a failure is `error`; retries, waits and cancel requests are `warn`; the rest `info`.
A `metrics` event (written by the worker at logged steps) keeps its data; others show `{}`.
A job refused at creation has no training job, hence no rows: its two events (validating, then
the failure) are shown with ids 1 and 2 of its own, which page like any others.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.finetuning import ids
from registry.finetuning.errors import OpenAIError
from registry.finetuning.jobs_schemas import EventList, EventOut, unix
from registry.models import FineTuningJob, TrainingJobEvent

_ERROR = frozenset({"failed", "refused"})
_WARN = frozenset({"retrying", "waiting", "cancel_requested"})


# OpenAI's wording for a job's milestones, with loraplex's own message after it
_SAID = {
    "started": "Fine-tuning job started",
    "succeeded": "The job has successfully completed",
    "failed": "The job failed",
    "cancelled": "The job was cancelled",
}


def _message(kind: str, message: str) -> str:
    said = _SAID.get(kind)
    if said is None:
        return message
    return f"{said}: {message}" if message else said


def level(kind: str) -> str:
    return "error" if kind in _ERROR else "warn" if kind in _WARN else "info"


def _event(row_id: int, when: dt.datetime, kind: str, message: str, data: Any) -> EventOut:
    metrics = kind == "metrics"
    return EventOut(
        id=ids.event_id(row_id),
        created_at=unix(when) or 0,
        level=level(kind),  # type: ignore[arg-type]
        message=_message(kind, message),
        type="metrics" if metrics else "message",
        data=data if metrics and isinstance(data, dict) else {},
    )


def _refused(row: FineTuningJob) -> list[EventOut]:
    """The events of a job refused at creation: newest first."""
    file_id = ids.encode(ids.FILE, row.training_file_id)
    message = (row.error or {}).get("message", "The job failed")
    return [
        _event(2, row.created_at, "refused", message, {}),
        _event(1, row.created_at, "validating_files", f"Validating training file: {file_id}", {}),
    ]


def list_events(
    session: Session, *, row: FineTuningJob, after: str | None, limit: int
) -> EventList:
    cursor = None
    if after is not None:
        cursor = ids.decode_event(after)
        if cursor is None:
            raise OpenAIError(400, f"after: '{after}' is not an event id", param="after")
    if row.training_job_id is None:
        data = [e for e in _refused(row) if cursor is None or int(e.id[len(ids.EVENT) :]) < cursor]
        return EventList(data=data[:limit], has_more=len(data) > limit)
    stmt = select(TrainingJobEvent).where(
        TrainingJobEvent.tenant_id == row.tenant_id,
        TrainingJobEvent.job_id == row.training_job_id,
    )
    if cursor is not None:
        stmt = stmt.where(TrainingJobEvent.id < cursor)
    stmt = stmt.order_by(TrainingJobEvent.id.desc()).limit(limit + 1)
    found = session.execute(stmt).scalars().all()
    events = [_event(e.id, e.occurred_at, e.kind, e.message, e.data) for e in found[:limit]]
    return EventList(data=events, has_more=len(found) > limit)
