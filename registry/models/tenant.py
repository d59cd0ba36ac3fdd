from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, String, true
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, utcnow


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    disabled_at: Mapped[dt.datetime | None]
    quota_dataset_bytes: Mapped[int] = mapped_column(BigInteger)
    quota_adapters: Mapped[int]
    traffic_logging: Mapped[bool] = mapped_column(default=True, server_default=true())
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None
