"""A fine-tuning job's checkpoints in OpenAI's shape, newest step first.

Each is a `TrainingCheckpoint` the worker kept (the adapter at an evaluation that improved on
the held-out set); its model name is the job's `fine_tuned_model` plus `:ckpt-step-<N>`, which
the gateway serves. `after=ftckpt-...`: checkpoints of earlier steps than that one.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.finetuning import ids, names
from registry.finetuning.errors import OpenAIError
from registry.finetuning.jobs_schemas import CheckpointList, CheckpointMetrics, CheckpointOut, unix
from registry.models import FineTuningJob, TrainingCheckpoint

_METRICS = tuple(CheckpointMetrics.model_fields)


def _out(row: FineTuningJob, ckpt: TrainingCheckpoint) -> CheckpointOut:
    metrics = {k: v for k, v in (ckpt.metrics or {}).items() if k in _METRICS}
    return CheckpointOut(
        id=ids.encode(ids.CHECKPOINT, ckpt.id),
        created_at=unix(ckpt.created_at) or 0,
        fine_tuned_model_checkpoint=names.checkpoint_model(row.fine_tuned_model, ckpt.step),
        fine_tuning_job_id=ids.encode(ids.JOB, row.id),
        metrics=CheckpointMetrics(**({"step": ckpt.step} | metrics)),
        step_number=ckpt.step,
    )


def list_checkpoints(
    session: Session, *, row: FineTuningJob, after: str | None, limit: int
) -> CheckpointList:
    if row.training_job_id is None:
        return CheckpointList(data=[], first_id=None, last_id=None, has_more=False)
    stmt = select(TrainingCheckpoint).where(
        TrainingCheckpoint.tenant_id == row.tenant_id,
        TrainingCheckpoint.job_id == row.training_job_id,
    )
    if after is not None:
        cursor_id = ids.decode(ids.CHECKPOINT, after)
        cursor = session.execute(
            stmt.where(TrainingCheckpoint.id == cursor_id)
        ).scalar_one_or_none()
        if cursor_id is None or cursor is None:
            raise OpenAIError(404, f"No such checkpoint of this job: {after}", param="after")
        stmt = stmt.where(TrainingCheckpoint.step < cursor.step)
    stmt = stmt.order_by(TrainingCheckpoint.step.desc()).limit(limit + 1)
    found = session.execute(stmt).scalars().all()
    data = [_out(row, c) for c in found[:limit]]
    return CheckpointList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=len(found) > limit,
    )
