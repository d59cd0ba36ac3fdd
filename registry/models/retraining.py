from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, utcnow
from registry.models.enums import DatasetMode, DriftOutcome, ScheduleOutcome, enum_column


class TrainingSchedule(Base):
    """A cron schedule that retrains one adapter. `next_run_at` is the next due time in UTC
    (None while disabled); `next_fire_at` the time the tick runs it: the due time plus the
    adapter's place in the spread window (`registry.schedules.spread`). The tick claims rows
    whose fire time has come under row locks and moves both forward."""

    __tablename__ = "training_schedules"
    __table_args__ = (Index("ix_training_schedules_fire", "enabled", "next_fire_at"),)

    adapter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapters.id"), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    cron: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool]
    datasets: Mapped[DatasetMode] = mapped_column(
        enum_column(DatasetMode, column="datasets", length=16)
    )
    dataset_names: Mapped[list[str] | None] = mapped_column(JSON)  # None: every name
    next_run_at: Mapped[dt.datetime | None]
    # 0: fire at the due time; else within [0, spread_seconds) after it
    spread_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_fire_at: Mapped[dt.datetime | None]
    last_due_at: Mapped[dt.datetime | None]
    last_run_at: Mapped[dt.datetime | None]
    last_job_id: Mapped[uuid.UUID | None]
    last_outcome: Mapped[ScheduleOutcome] = mapped_column(
        enum_column(ScheduleOutcome, column="last_outcome", length=16),
        default=ScheduleOutcome.NOT_RUN,
    )
    last_message: Mapped[str] = mapped_column(String(2000), default="")
    updated_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DriftPolicy(Base):
    """When one adapter's drift metric crosses `threshold` (on at least `min_samples` prompts of
    the last `window_seconds`), retrain it, at most once per `cooldown_seconds`."""

    __tablename__ = "drift_policies"

    adapter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapters.id"), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    metric: Mapped[str] = mapped_column(String(50))
    threshold: Mapped[float] = mapped_column(Float)
    window_seconds: Mapped[int]
    min_samples: Mapped[int]
    cooldown_seconds: Mapped[int]
    enabled: Mapped[bool]
    datasets: Mapped[DatasetMode] = mapped_column(
        enum_column(DatasetMode, column="datasets", length=16)
    )
    dataset_names: Mapped[list[str] | None] = mapped_column(JSON)
    # datasets "traffic" only: the teacher that labels the window's prompts nobody corrected
    teacher_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("teachers.id"))
    last_checked_at: Mapped[dt.datetime | None]
    last_outcome: Mapped[DriftOutcome] = mapped_column(
        enum_column(DriftOutcome, column="last_outcome", length=16),
        default=DriftOutcome.NOT_CHECKED,
    )
    last_message: Mapped[str] = mapped_column(String(2000), default="")
    last_triggered_at: Mapped[dt.datetime | None]
    last_job_id: Mapped[uuid.UUID | None]
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
