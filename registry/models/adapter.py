from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, utcnow
from registry.models.enums import DatasetRole, Trigger, VersionStatus, enum_column

# SQLite autoincrements only an INTEGER PRIMARY KEY.
BIGINT_PK = BigInteger().with_variant(Integer(), "sqlite")


class Adapter(Base):
    """A tenant's named adapter on one base model; its versions are numbered 1, 2, 3..."""

    __tablename__ = "adapters"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    base_model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("base_models.id"))
    training_config: Mapped[dict[str, Any]] = mapped_column(JSON)
    promotion_policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    next_version: Mapped[int] = mapped_column(default=1)  # allocated under the row lock
    archived_at: Mapped[dt.datetime | None]
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AdapterVersion(Base):
    """Immutable once `ready`: the artifact, its digests and its full lineage."""

    __tablename__ = "adapter_versions"
    __table_args__ = (UniqueConstraint("adapter_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    adapter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapters.id"), index=True)
    version: Mapped[int]
    status: Mapped[VersionStatus] = mapped_column(
        enum_column(VersionStatus, column="status", length=16)
    )
    status_message: Mapped[str] = mapped_column(String(2000), default="")
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("adapter_versions.id"))
    base_model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("base_models.id"))
    base_model_digest: Mapped[str] = mapped_column(String(64))
    training_config: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_hash: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[Trigger] = mapped_column(enum_column(Trigger, column="trigger", length=16))
    trigger_ref: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    job_id: Mapped[str | None] = mapped_column(String(64))
    artifact_prefix: Mapped[str | None] = mapped_column(String(500))
    manifest: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    manifest_digest: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    code_version: Mapped[str] = mapped_column(String(50))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    ready_at: Mapped[dt.datetime | None]
    # the last promotion-gate decision on this version: {passed, promote, reason, checks, at}
    gate: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AdapterVersionDataset(Base):
    __tablename__ = "adapter_version_datasets"

    version_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("adapter_versions.id"), primary_key=True
    )
    dataset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("datasets.id"), primary_key=True)
    role: Mapped[DatasetRole] = mapped_column(enum_column(DatasetRole, column="role", length=16))


class Alias(Base):
    __tablename__ = "adapter_aliases"

    adapter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapters.id"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapter_versions.id"))
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AliasEvent(Base):
    """Alias history: every move, including deletion (to_version None)."""

    __tablename__ = "adapter_alias_events"
    __table_args__ = (Index("ix_alias_events_lookup", "adapter_id", "alias", "occurred_at"),)

    id: Mapped[int] = mapped_column(BIGINT_PK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    adapter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapters.id"))
    alias: Mapped[str] = mapped_column(String(40))
    from_version: Mapped[int | None]
    to_version: Mapped[int | None]
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(2000), default="")
    # a version the gate refused, promoted by a caller allowed to override it
    override: Mapped[bool] = mapped_column(default=False, server_default=false())
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
