from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, utcnow
from registry.models.adapter import BIGINT_PK
from registry.models.enums import InferenceEndpoint, SampleSource, enum_column


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
    """A sampled prompt, in the dataset row format (chat `messages` or `prompt`), for drift."""

    __tablename__ = "traffic_samples"
    __table_args__ = (Index("ix_traffic_adapter_time", "tenant_id", "adapter_id", "created_at"),)

    id: Mapped[int] = mapped_column(BIGINT_PK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    adapter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapters.id"))
    version_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("adapter_versions.id"))
    source: Mapped[SampleSource] = mapped_column(
        enum_column(SampleSource, column="source", length=16)
    )
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
