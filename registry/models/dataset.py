from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, utcnow
from registry.models.enums import DatasetFormat, enum_column


class Dataset(Base):
    """An immutable dataset version: one validated upload under a name.

    `tenant_id` None: a platform dataset, uploaded by ops (rehearsal data for a base model);
    tenants never read its rows.
    """

    __tablename__ = "datasets"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", "version"),
        Index(
            "uq_datasets_platform_name_version",
            "name",
            "version",
            unique=True,
            postgresql_where=text("tenant_id IS NULL"),
            sqlite_where=text("tenant_id IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int]
    format: Mapped[DatasetFormat] = mapped_column(
        enum_column(DatasetFormat, column="format", length=32)
    )
    sha256: Mapped[str] = mapped_column(String(64))  # of the stored (de-duplicated) rows
    bytes: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int]
    duplicates_dropped: Mapped[int]
    tool_rows: Mapped[int] = mapped_column(default=0, server_default="0")  # rows with `tools`
    source_sha256: Mapped[str] = mapped_column(String(64))  # of the file as uploaded
    source_bytes: Mapped[int] = mapped_column(BigInteger)
    object_key: Mapped[str] = mapped_column(String(500))
    # None: uploaded. {"kind": "traffic", ...filters and counts} when curated from traffic,
    # {"kind": "teacher", ...teacher, model and counts} when labelled by a teacher.
    origin: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
