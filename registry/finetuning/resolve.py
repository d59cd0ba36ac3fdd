"""A fine-tuned model's name -> the version (or checkpoint) it serves: the gateway's `ft:` route.

`ft:<base>:<tenant>:<suffix>:<id>` is the version the job produced, promoted or not;
`...:ckpt-step-<N>` that job's checkpoint at step N. Only the caller's tenant is searched, and
a job that did not succeed, a deleted model (`DELETE /v1/models/...`) or an archived adapter is
NotFound exactly like a name that never existed, so the gateway answers all of them alike.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.errors import NotFound
from registry.finetuning import names
from registry.models import Adapter, AdapterVersion, TrainingJob
from registry.models.enums import JobStatus
from registry.models.finetuning import FineTuningJob, TrainingCheckpoint


@dataclass(frozen=True)
class FtTarget:
    adapter: Adapter
    version: AdapterVersion
    checkpoint: TrainingCheckpoint | None
    created: dt.datetime | None = None  # when the model (or checkpoint) came to be


def live_job(
    session: Session, tenant_id: uuid.UUID, model: str
) -> tuple[FineTuningJob, TrainingJob] | None:
    """The succeeded, not deleted job whose `fine_tuned_model` is `model`, with its training job."""
    row = session.execute(
        select(FineTuningJob, TrainingJob)
        .join(TrainingJob, TrainingJob.id == FineTuningJob.training_job_id)
        .where(
            FineTuningJob.tenant_id == tenant_id,
            FineTuningJob.fine_tuned_model == model,
            FineTuningJob.model_deleted_at.is_(None),
            TrainingJob.tenant_id == tenant_id,
            TrainingJob.status == JobStatus.SUCCEEDED,
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


def lookup(session: Session, tenant_id: uuid.UUID, name: str) -> FtTarget:
    """What `name` serves for `tenant_id`; NotFound when it is not one of its live models."""
    parsed = names.parse(name)
    found = live_job(session, tenant_id, parsed.model) if parsed is not None else None
    if parsed is None or found is None:
        raise NotFound(f"fine-tuned model '{name}' not found")
    job, training = found
    adapter = session.get(Adapter, training.adapter_id)
    version = session.get(AdapterVersion, training.version_id)
    if adapter is None or version is None or adapter.archived_at is not None:
        raise NotFound(f"fine-tuned model '{name}' not found")
    if parsed.step is None:
        return FtTarget(adapter, version, None, training.finished_at or job.created_at)
    checkpoint = session.scalars(
        select(TrainingCheckpoint).where(
            TrainingCheckpoint.tenant_id == tenant_id,
            TrainingCheckpoint.job_id == training.id,
            TrainingCheckpoint.step == parsed.step,
        )
    ).first()
    if checkpoint is None:
        raise NotFound(f"fine-tuned model '{parsed.model}' has no checkpoint at step {parsed.step}")
    return FtTarget(adapter, version, checkpoint, checkpoint.created_at)
