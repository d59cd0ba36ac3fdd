from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, utcnow
from registry.models.adapter import BIGINT_PK
from registry.models.enums import EvalSubject, enum_column


class Eval(Base):
    """Scores from one suite. `subject` says what was scored on this version's eval set:
    the version itself, or the base model (a baseline recorded alongside it)."""

    __tablename__ = "evals"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    adapter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapters.id"))
    version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapter_versions.id"), index=True)
    subject: Mapped[EvalSubject] = mapped_column(
        enum_column(EvalSubject, column="subject", length=16)
    )
    suite: Mapped[str] = mapped_column(String(100))
    metrics: Mapped[dict[str, float]] = mapped_column(JSON)
    dataset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("datasets.id"))
    # the eval-suite version scored (None: the version's held-out split)
    suite_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("eval_suites.id"), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class DriftMetric(Base):
    __tablename__ = "drift_metrics"
    __table_args__ = (Index("ix_drift_metrics_series", "adapter_id", "metric", "window_end"),)

    id: Mapped[int] = mapped_column(BIGINT_PK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    adapter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapters.id"))
    version_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("adapter_versions.id"))
    metric: Mapped[str] = mapped_column(String(50))
    value: Mapped[float] = mapped_column(Float)
    window_start: Mapped[dt.datetime]
    window_end: Mapped[dt.datetime]
    sample_size: Mapped[int] = mapped_column(BigInteger)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
