from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base
from registry.models.enums import Role, enum_column

GENESIS_HASH = "0" * 64
LEGACY_CHAIN = "legacy"  # the single global chain written before migration 0013 (frozen)
PLATFORM_CHAIN = "platform"  # events with no tenant


def chain_of(tenant_id: uuid.UUID | None) -> str:
    """The chain an event belongs to: its tenant's, or the platform's."""
    return f"tenant:{tenant_id}" if tenant_id is not None else PLATFORM_CHAIN


class HashScheme(enum.StrEnum):
    """How an event's `hash` was computed. SHA256: before the key existed (accepted only before
    the first keyed event of the legacy chain); HMAC_SHA256: keyed, legacy global chain (0007 to
    0012); HMAC_CHAIN: keyed, and the hash also covers `chain` and `chain_seq` (from 0013)."""

    SHA256 = "sha256"
    HMAC_SHA256 = "hmac-sha256"
    HMAC_CHAIN = "hmac-chain"


class AuditEvent(Base):
    """One link of a hash chain. Each event belongs to one chain (`tenant:<uuid>`, `platform`, or
    `legacy` for events from before 0013); `chain_seq` is gapless inside its chain (NULL for
    legacy events, which are ordered by `seq`) and `prev_hash` is the previous event of the same
    chain. `seq` is the global listing cursor: increasing but not gapless (a sequence)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        UniqueConstraint("chain", "chain_seq", name="uq_audit_events_chain_chain_seq"),
    )

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
    chain: Mapped[str] = mapped_column(String(80))
    chain_seq: Mapped[int | None] = mapped_column(BigInteger)


class AuditChainHead(Base):
    """One row per chain: its tip. Appenders of a chain lock its row (FOR UPDATE), so appends to
    one chain are serialized and appends to different chains are not. The `legacy` row is the
    frozen head of the global chain from before 0013."""

    __tablename__ = "audit_chain_heads"

    chain: Mapped[str] = mapped_column(String(80), primary_key=True)
    last_chain_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)  # the tip's global seq (0: empty)
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A link of the checkpoint chain: the heads that changed since the previous checkpoint
    (its entries), folded into `digest` = HMAC(audit key, seq, prev_digest, created_at, sorted
    entries). `seq` is gapless; each one is also anchored write-once in the object store."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[dt.datetime]
    entries: Mapped[int] = mapped_column(BigInteger)
    prev_digest: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))


class AuditCheckpointEntry(Base):
    """One chain's head as a checkpoint saw it."""

    __tablename__ = "audit_checkpoint_entries"
    __table_args__ = (Index("ix_audit_checkpoint_entries_chain", "chain", "checkpoint_seq"),)

    checkpoint_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    chain: Mapped[str] = mapped_column(String(80), primary_key=True)
    chain_seq: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainMark(Base):
    """The newest checkpointed chain_seq of each chain: how the checkpointer finds the heads that
    changed without locking them (it writes here, never to audit_chain_heads)."""

    __tablename__ = "audit_chain_marks"

    chain: Mapped[str] = mapped_column(String(80), primary_key=True)
    chain_seq: Mapped[int] = mapped_column(BigInteger)
    checkpoint_seq: Mapped[int] = mapped_column(BigInteger)
