from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from registry.models.enums import JobKind, JobStatus
from registry.validation_types import JsonObject

FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class TrainingJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    adapter: str = Field(description="the tenant's adapter to train a new version of")
    dataset_ids: list[uuid.UUID] = Field(min_length=1, max_length=50)
    validation_dataset_id: uuid.UUID | None = Field(
        default=None, description="held-out set; default: a seeded split of the training data"
    )
    hyperparameters: JsonObject = Field(
        default_factory=dict,
        description="overrides of the adapter's training config (rank, learning_rate, epochs...)",
    )


class JobEventOut(BaseModel):
    kind: str
    message: str
    data: dict[str, Any]
    occurred_at: dt.datetime


class TrainingJobOut(BaseModel):
    id: uuid.UUID
    tenant: str
    adapter: str
    version: int
    kind: JobKind = Field(
        default=JobKind.TRAIN, description="train a new version, or evaluate an existing one"
    )
    status: JobStatus
    trigger: str
    trigger_ref: dict[str, Any]
    config: dict[str, Any]
    dataset_ids: list[str]
    validation_dataset_id: uuid.UUID | None
    progress: dict[str, Any] = Field(
        description="step, total_steps, epoch, train_loss, eval_loss, tokens_per_second"
    )
    result: dict[str, Any] = Field(description="metrics, evals and the promotion decision")
    priority: int = Field(
        default=0, description="from the trigger (LORAPLEX_TRAINING_PRIORITY_*): higher first"
    )
    not_before: dt.datetime | None = Field(
        default=None, description="a retry waits for its backoff: not claimed before this"
    )
    attempts: int
    max_attempts: int
    cancel_requested: bool
    pause_requested: bool = Field(
        default=False, description="a running job stops and pauses after its current step"
    )
    error: str
    created_by: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    events: list[JobEventOut] | None = None


class TrainingJobList(BaseModel):
    items: list[TrainingJobOut]
