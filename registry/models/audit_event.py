from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import JSON, BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base
from registry.models.enums import Role, enum_column

GENESIS_HASH = "0" * 64


class HashScheme(enum.StrEnum):
    """How an event's `hash` was computed. Events written before the key existed are SHA256;
    verification accepts them only before the first HMAC event (no downgrade later on)."""

    SHA256 = "sha256"
    HMAC_SHA256 = "hmac-sha256"


class AuditEvent(Base):
    """One link of the hash chain. `seq` is gapless; `hash` covers every other column but
    `hash_scheme`, which says whether it is keyed (HMAC) or a legacy plain SHA-256."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    occurred_at: Mapped[dt.datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[Role] = mapped_column(enum_column(Role, column="actor_role", length=16))
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(100), index=True)
    target_type: Mapped[str] = mapped_column(String(50))
    target_id: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    hash_scheme: Mapped[HashScheme] = mapped_column(
        enum_column(HashScheme, column="hash_scheme", length=16),
        server_default=HashScheme.SHA256.value,  # rows from before migration 0007
    )


class AuditChainHead(Base):
    """A single row: the chain's tip. Locking it serializes appends across processes."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
