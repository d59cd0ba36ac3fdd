"""A fine-tuning job's result file: `step_metrics.csv`, OpenAI's columns, from the job's metrics.

The worker calls `write_result_file` right before it marks a training job succeeded; the file
is a `TenantFile` (purpose `fine-tune-results`) whose CSV is stored at
`tenants/<tenant id>/files/<file id hex>.csv`. Its id is derived from the training job's id, so
a retried call (a worker that died after storing the object) overwrites the same object and
finds the same row: the call is idempotent. The content route renders the CSV again from the
events should the object be missing.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db import utcnow
from registry.finetuning import ids
from registry.models import TrainingJob, TrainingJobEvent
from registry.models.finetuning import FineTuningJob, TenantFile
from registry.storage import ObjectStore

log = structlog.get_logger(__name__)

RESULTS_PURPOSE = "fine-tune-results"
RESULTS_FILENAME = "step_metrics.csv"
COLUMNS = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")
# CSV column -> the metrics event's `data` key
_SOURCE = {
    "step": "step",
    "train_loss": "train_loss",
    "train_accuracy": "train_mean_token_accuracy",
    "valid_loss": "valid_loss",
    "valid_mean_token_accuracy": "valid_mean_token_accuracy",
}
_NAMESPACE = uuid.UUID("6b1d3c2e-8f4a-4c1b-9a57-0d2f5e7c9b10")


def result_file_id(training_job_id: uuid.UUID) -> uuid.UUID:
    """The result file's row id: fixed per training job (what makes writing it idempotent)."""
    return uuid.uuid5(_NAMESPACE, f"{RESULTS_PURPOSE}:{training_job_id}")


def result_object_key(tenant_id: uuid.UUID, file_id: uuid.UUID) -> str:
    return f"tenants/{tenant_id}/files/{file_id.hex}.csv"


def _cell(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


def render_rows(events: Sequence[dict[str, Any]]) -> bytes:
    """The CSV for metrics events' `data` in order: one line per step, the latest event for a
    step winning (a retried attempt reports its steps again)."""
    by_step: dict[int, dict[str, Any]] = {}
    for data in events:
        step = data.get("step")
        if isinstance(step, int) and not isinstance(step, bool):
            by_step[step] = data
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for step in sorted(by_step):
        writer.writerow([_cell(by_step[step].get(_SOURCE[c])) for c in COLUMNS])
    return out.getvalue().encode()


def render_csv(session: Session, *, tenant_id: uuid.UUID, job_id: uuid.UUID) -> bytes:
    """`step_metrics.csv` of a training job, from its `metrics` events (tenant-filtered)."""
    stmt = (
        select(TrainingJobEvent.data)
        .where(
            TrainingJobEvent.job_id == job_id,
            TrainingJobEvent.tenant_id == tenant_id,
            TrainingJobEvent.kind == "metrics",
        )
        .order_by(TrainingJobEvent.id)
    )
    return render_rows([d or {} for d in session.execute(stmt).scalars()])


def write_result_file(session: Session, store: ObjectStore, job: TrainingJob) -> None:
    """Store the job's result file; a no-op for a training job no fine-tuning job asked for, and
    for one whose result file already exists. Flushes; the caller commits."""
    stmt = select(FineTuningJob).where(
        FineTuningJob.training_job_id == job.id, FineTuningJob.tenant_id == job.tenant_id
    )
    ft = session.execute(stmt).scalar_one_or_none()
    if ft is None:
        return
    file_id = result_file_id(job.id)
    if session.get(TenantFile, file_id) is not None:
        return
    data = render_csv(session, tenant_id=job.tenant_id, job_id=job.id)
    key = result_object_key(job.tenant_id, file_id)
    store.put_bytes(key, data)
    session.add(
        TenantFile(
            id=file_id,
            tenant_id=job.tenant_id,
            filename=RESULTS_FILENAME,
            purpose=RESULTS_PURPOSE,
            bytes=len(data),
            status="processed",
            job_id=job.id,
            object_key=key,
            created_by=ft.created_by,
            created_at=utcnow(),
        )
    )
    session.flush()
    log.info("file.result_written", file=ids.encode(ids.FILE, file_id), job=str(job.id))


def result_file_ids(session: Session, *, tenant_id: uuid.UUID, job_id: uuid.UUID) -> list[str]:
    """A job's `result_files`: its live result file's id, if it has one."""
    stmt = select(TenantFile.id).where(
        TenantFile.tenant_id == tenant_id,
        TenantFile.job_id == job_id,
        TenantFile.purpose == RESULTS_PURPOSE,
        TenantFile.deleted_at.is_(None),
    )
    return [ids.encode(ids.FILE, row_id) for row_id in session.execute(stmt).scalars()]
