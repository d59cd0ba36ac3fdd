"""OpenAI's fine-tuning API over loraplex's own objects (registry/finetuning/).

A file is an upload (its dataset version, or the error that refused it) under an id of its own;
a fine-tuning job names the training job it became (none when its file was refused), with what
the client asked for; a checkpoint is the adapter at an evaluation that improved on the held-out
set, stored and checked like a version and servable on its own.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, utcnow


class TenantFile(Base):
    """`file-<id hex>`: a tenant's upload through `POST /v1/files`, or a job's result file.

    `status` is `processed` (its dataset version is `dataset_id`) or `error` (nothing was
    stored; `error` says why, naming the line). A result file (`purpose` `fine-tune-results`)
    belongs to `job_id` and is rendered from the job's metrics when read. Deleting sets
    `deleted_at`; the dataset version stays where a version was trained on it."""

    __tablename__ = "tenant_files"
    __table_args__ = (Index("ix_tenant_files_tenant_time", "tenant_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))  # processed | error
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # code, message, param, line
    dataset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("datasets.id"))
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("training_jobs.id"))
    object_key: Mapped[str | None] = mapped_column(String(500))  # a result file's CSV
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[dt.datetime | None]


class FineTuningJob(Base):
    """`ftjob-<id hex>`: what the client asked for. `id` is the training job's id when there is
    one; a job refused for its files has none and is `failed` with `error` from the start."""

    __tablename__ = "fine_tuning_jobs"
    __table_args__ = (
        Index("ix_fine_tuning_jobs_tenant_time", "tenant_id", "created_at"),
        UniqueConstraint("tenant_id", "fine_tuned_model"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    training_job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("training_jobs.id"), unique=True
    )
    adapter_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("adapters.id"))
    model: Mapped[str] = mapped_column(String(100))  # the base model, as asked
    suffix: Mapped[str] = mapped_column(String(64), default="")
    fine_tuned_model: Mapped[str] = mapped_column(String(300))  # ft:<base>:<tenant>:<suffix>:<id>
    training_file_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant_files.id"))
    validation_file_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenant_files.id"))
    seed: Mapped[int] = mapped_column(BigInteger)
    job_metadata: Mapped[dict[str, str] | None] = mapped_column("metadata", JSON)
    method: Mapped[dict[str, Any]] = mapped_column(JSON)  # as asked, "auto" kept
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON)  # what "auto" chose
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # set when refused at creation
    model_deleted_at: Mapped[dt.datetime | None]  # `DELETE /v1/models/<fine_tuned_model>`
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TrainingCheckpoint(Base):
    """The adapter at step `step` of a job, when that evaluation improved on the held-out set.

    Files under `artifact_prefix`, listed with their sha256 in `manifest` (the resolver checks
    them, as for a version); engine name `lpx-<id hex>`. A job keeps its last
    `keep_checkpoints` of them: older ones are deleted as new ones arrive."""

    __tablename__ = "training_checkpoints"
    __table_args__ = (UniqueConstraint("job_id", "step"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("training_jobs.id"))
    adapter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapters.id"))
    version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapter_versions.id"))
    base_model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("base_models.id"))
    step: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    artifact_prefix: Mapped[str] = mapped_column(String(500))
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    manifest_digest: Mapped[str] = mapped_column(String(80))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
