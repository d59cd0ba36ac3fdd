from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, utcnow
from registry.models.enums import SuiteFormat, enum_column

PLATFORM_ONLY = text("tenant_id IS NULL")


class EvalSuite(Base):
    """An immutable eval-suite version: prompts with the checks a good answer must pass.

    `tenant_id` None: a platform suite, uploaded by ops (a base model's general suite).
    """

    __tablename__ = "eval_suites"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", "version"),
        Index(
            "uq_eval_suites_platform_name_version",
            "name",
            "version",
            unique=True,
            postgresql_where=PLATFORM_ONLY,
            sqlite_where=PLATFORM_ONLY,
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int]
    format: Mapped[SuiteFormat] = mapped_column(
        enum_column(SuiteFormat, column="format", length=16)
    )
    sha256: Mapped[str] = mapped_column(String(64))  # of the stored (de-duplicated) rows
    bytes: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int]
    duplicates_dropped: Mapped[int]
    check_counts: Mapped[dict[str, int]] = mapped_column(JSON)  # kind -> rows that have it
    source_sha256: Mapped[str] = mapped_column(String(64))
    source_bytes: Mapped[int] = mapped_column(BigInteger)
    object_key: Mapped[str] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AdapterEvalSuite(Base):
    """A suite version pinned to an adapter: every version of the adapter is scored on it."""

    __tablename__ = "adapter_eval_suites"

    adapter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("adapters.id"), primary_key=True)
    suite_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("eval_suites.id"), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    position: Mapped[int]
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
