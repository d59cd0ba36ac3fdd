from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, utcnow
from registry.models.adapter import BIGINT_PK
from registry.models.enums import JobKind, JobStatus, Trigger, enum_column


class TrainingJob(Base):
    """One request to train a new version. A row first, then a Celery task (sent after commit).

    A running job holds a lease that its worker renews; a reaper requeues or fails a job whose
    lease ran out (its worker died), so no job vanishes and no half-made version becomes visible.
    """

    __tablename__ = "training_jobs"
    __table_args__ = (
        Index("ix_training_jobs_adapter_status", "adapter_id", "status"),
        # the fair claim (registry/training/queueing.py) and the backlog's drain rate
        Index("ix_training_jobs_claim", "status", "priority", "created_at"),
        Index("ix_training_jobs_tenant_status", "tenant_id", "status"),
        Index("ix_training_jobs_finished_at", "finished_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    adapter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapters.id"))
    version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapter_versions.id"))
    status: Mapped[JobStatus] = mapped_column(
        enum_column(JobStatus, column="status", length=16), index=True
    )
    kind: Mapped[JobKind] = mapped_column(
        enum_column(JobKind, column="kind", length=16),
        default=JobKind.TRAIN,
        server_default=JobKind.TRAIN.value,
    )
    trigger: Mapped[Trigger] = mapped_column(enum_column(Trigger, column="trigger", length=16))
    trigger_ref: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # claim order: higher first (set from the trigger at creation; see Settings)
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # a retry waits out its backoff: not claimed before this time
    not_before: Mapped[dt.datetime | None]
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # effective training config
    dataset_ids: Mapped[list[str]] = mapped_column(JSON)
    validation_dataset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("datasets.id"))
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    pause_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # object key of the saved training state of a paused job (adapter, optimizer, data order
    # and position, RNG); the next attempt continues from it
    resume_key: Mapped[str | None] = mapped_column(String(500))
    # adapters kept at evaluations that improved on the held-out set (0: none)
    keep_checkpoints: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    worker: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[dt.datetime | None]
    error: Mapped[str] = mapped_column(String(4000), default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TrainingTenantTurn(Base):
    """When a tenant last had a job started: the claim serves the tenant that waited longest
    (round robin across tenants). A tenant with no row has never started one: it goes first."""

    __tablename__ = "training_tenant_turns"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    last_started_at: Mapped[dt.datetime]


class TrainingJobEvent(Base):
    """A job's milestones, in order: queued, started, evals, gate outcome, retries, failure."""

    __tablename__ = "training_job_events"

    id: Mapped[int] = mapped_column(BIGINT_PK, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("training_jobs.id"), index=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(String(2000), default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
