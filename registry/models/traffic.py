from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Float, ForeignKey, Index, SmallInteger, String, true
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, utcnow
from registry.models.adapter import BIGINT_PK
from registry.models.enums import CaptureMode, InferenceEndpoint, SampleSource, enum_column


class UsageRecord(Base):
    """One gateway request: who asked, which immutable version answered, tokens and latency.

    Written in batches by the gateway; the answer to "which version served whom, when"."""

    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_tenant_time", "tenant_id", "started_at"),
        Index("ix_usage_version_time", "version_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(BIGINT_PK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    adapter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapters.id"))
    version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapter_versions.id"))
    request_id: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(200))  # as the caller named it
    endpoint: Mapped[InferenceEndpoint] = mapped_column(
        enum_column(InferenceEndpoint, column="endpoint", length=32)
    )
    stream: Mapped[bool]
    status_code: Mapped[int]
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    tool_calls: Mapped[int] = mapped_column(default=0, server_default="0")  # calls returned
    latency_ms: Mapped[float]
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TrafficSample(Base):
    """A sampled prompt, in the dataset row format (chat `messages` or `prompt`), for drift.

    With full capture the whole trace (request, response, tool calls, the version that
    answered) is one line (`object_line`, 0-based) of a JSONL batch object (`object_key`) that
    the gateway writes per flush; `record` stays the (redacted) prompt. `redactions` counts
    what redaction replaced in this trace, by kind."""

    __tablename__ = "traffic_samples"
    __table_args__ = (
        Index("ix_traffic_adapter_time", "tenant_id", "adapter_id", "created_at"),
        Index("ix_traffic_tenant_request", "tenant_id", "request_id"),
        Index("ix_traffic_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BIGINT_PK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    adapter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapters.id"))
    version_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("adapter_versions.id"))
    source: Mapped[SampleSource] = mapped_column(
        enum_column(SampleSource, column="source", length=16)
    )
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(64))
    captured: Mapped[CaptureMode] = mapped_column(
        enum_column(CaptureMode, column="captured", length=16),
        default=CaptureMode.PROMPTS,
        server_default=CaptureMode.PROMPTS.value,
    )
    object_key: Mapped[str | None] = mapped_column(String(500))
    object_line: Mapped[int | None]
    redactions: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TrafficCapture(Base):
    """What the gateway keeps of one adapter's traffic. No row: prompts at the platform's
    sample rate (`LORAPLEX_TRAFFIC_SAMPLE_RATE`), redacted, kept `LORAPLEX_TRAFFIC_RETENTION`.
    A tenant's opt-out (`tenants.traffic_logging`) overrides everything here."""

    __tablename__ = "traffic_capture"

    adapter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapters.id"), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    mode: Mapped[CaptureMode] = mapped_column(enum_column(CaptureMode, column="mode", length=16))
    sample_rate: Mapped[float | None] = mapped_column(Float)  # None: the platform's rate
    retention_seconds: Mapped[int]
    redact: Mapped[bool] = mapped_column(default=True, server_default=true())
    # [{"name": "ORDER_ID", "pattern": "ORD-[0-9]{6}"}, ...]: RE2, checked when set
    redact_patterns: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    updated_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Feedback(Base):
    """A tenant's word on one response, by request id: a rating, corrected assistant
    message(s), a comment. One per request: later feedback replaces it."""

    __tablename__ = "feedback"
    __table_args__ = (
        Index("uq_feedback_tenant_request", "tenant_id", "request_id", unique=True),
        Index("ix_feedback_adapter_time", "tenant_id", "adapter_id", "created_at"),
        CheckConstraint("abs(rating) <= 1", name="rating"),
    )

    id: Mapped[int] = mapped_column(BIGINT_PK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    adapter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapters.id"))
    version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapter_versions.id"))
    request_id: Mapped[str] = mapped_column(String(64))
    rating: Mapped[int] = mapped_column(SmallInteger)
    correction: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)  # redacted
    comment: Mapped[str] = mapped_column(String(2000), default="")
    redactions: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
