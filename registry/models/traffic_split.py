from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, false
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, utcnow
from registry.models.adapter import BIGINT_PK


class TrafficSplit(Base):
    """An adapter's active traffic split: the requests for its `production` are shared between
    versions by weight, sticky per end user. No row: production takes all traffic.

    `arms`: [{"key": "production", "version": 3, "version_id": "<uuid>", "weight": 90}, ...],
    the keys as the caller named them, resolved to versions when the split was set. The first
    arm is the `baseline`: the version production pointed at then; the split applies only while
    production still points there."""

    __tablename__ = "traffic_splits"

    adapter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapters.id"), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    baseline_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapter_versions.id"))
    arms: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # {"min_requests", "max_error_rate_increase", "max_latency_ratio"}; None: never automatic
    rollback: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # the last automatic check: {"at", "decision", "reason", "figures"}
    last_check: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(String(2000), default="")
    set_by: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TrafficSplitEvent(Base):
    """Split history: every change, including clearing (`arms` empty) and automatic rollbacks
    (`automatic`, with the figures that decided in `details`)."""

    __tablename__ = "traffic_split_events"
    __table_args__ = (Index("ix_split_events_lookup", "adapter_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BIGINT_PK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    adapter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapters.id"))
    arms: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    previous: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    rollback: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(2000), default="")
    automatic: Mapped[bool] = mapped_column(default=False, server_default=false())
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
