from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, utcnow
from registry.models.enums import JobStatus, enum_column


class Teacher(Base):
    """An OpenAI-compatible endpoint and model that ops lend to labelling jobs.

    The key is never stored: `secret_name` names a secret (a file in LORAPLEX_SECRETS_DIR, or
    an environment variable) that workers read when they call the teacher."""

    __tablename__ = "teachers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    base_url: Mapped[str] = mapped_column(String(500))  # ends before /chat/completions
    model: Mapped[str] = mapped_column(String(200))
    secret_name: Mapped[str | None] = mapped_column(String(200))
    requests_per_minute: Mapped[int]
    timeout_seconds: Mapped[float] = mapped_column(Float)
    max_retries: Mapped[int]
    max_requests: Mapped[int]  # the budget of one labelling job
    max_tokens: Mapped[int]  # per answer
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LabellingJob(Base):
    """Prompts from an adapter's traffic sent to a teacher; answers kept only when they pass
    the adapter's eval checks that apply to them; the kept rows become one dataset version.

    `params`: the traffic filters and the dataset name; `counts`: sent, kept, refused (by
    check), failed; `followup`: what to do once the dataset exists (a drift retrain)."""

    __tablename__ = "labelling_jobs"
    __table_args__ = (Index("ix_labelling_jobs_tenant_time", "tenant_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    adapter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapters.id"))
    teacher_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("teachers.id"))
    status: Mapped[JobStatus] = mapped_column(
        enum_column(JobStatus, column="status", length=16), index=True
    )
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    followup: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    dataset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("datasets.id"))
    training_job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("training_jobs.id"))
    error: Mapped[str] = mapped_column(String(4000), default="")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[dt.datetime | None]
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
