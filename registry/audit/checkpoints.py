"""Checkpoints: fold the chain heads that changed since the previous checkpoint into a keyed,
chained digest, store it, then anchor it write-once in the object store.

The checkpointer reads heads without locking them (it writes only its own tables), so appenders
never wait on it; concurrent checkpointers are serialized by an advisory lock (PostgreSQL) or
the single writer (SQLite)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlalchemy.orm import Session

from registry.audit.anchors import (
    CHECKPOINT_PREFIX,
    AnchorResult,
    AuditChainBroken,
    InvalidAnchor,
    anchor_key,
    newest_anchor,
    write_anchor,
)
from registry.audit.hashing import checkpoint_digest
from registry.audit.repository import AuditRepository
from registry.errors import ServiceUnavailable
from registry.models import GENESIS_HASH, AuditCheckpoint
from registry.storage import ObjectStore, StorageError

LOCK_KEY = 0x4C50585F41554454  # "LPX_AUDT": pg_advisory_xact_lock key of the checkpointer


def checkpoint_and_anchor(
    session: Session, *, store: ObjectStore, audit_key: bytes, retain_days: int, now: dt.datetime
) -> AnchorResult:
    """Checkpoint the heads that changed (if any), commit, then anchor the newest checkpoint.

    Refuses (409) when the log contradicts its newest anchor or checkpoint (cut or rewritten)."""
    try:
        lock = store.object_lock()
    except StorageError as e:
        raise ServiceUnavailable(f"object store unavailable for audit anchors: {e}") from e
    try:
        _, anchored = newest_anchor(store, audit_key, CHECKPOINT_PREFIX)
    except InvalidAnchor as e:
        raise AuditChainBroken(str(e)) from None
    repo = AuditRepository(session)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
    last = repo.last_checkpoint()
    if anchored is not None:
        row = repo.checkpoint(anchored.seq)
        if row is None or row.digest != anchored.hash:
            raise AuditChainBroken(
                f"the checkpoints (newest {last.seq if last else 0}) contradict anchor "
                f"{anchored.key} (checkpoint {anchored.seq}): checkpoints were cut or rewritten;"
                " run GET /v1/audit/verify"
            )
    changed = repo.changed_heads()
    for chain, chain_seq, _, _, tip_ok, mark in changed:
        if not tip_ok:
            raise AuditChainBroken(
                f"the head of chain {chain} (chain_seq {chain_seq}) does not match its last "
                "event; run GET /v1/audit/verify"
            )
        if mark is not None and chain_seq < mark:
            raise AuditChainBroken(
                f"chain {chain} ends at chain_seq {chain_seq} but a checkpoint recorded "
                f"{mark}: it contradicts the checkpoints, events were cut; run GET /v1/audit/verify"
            )
    entries = [(c, n, s, h) for c, n, s, h, _, _ in changed]
    if entries:
        seq = (last.seq if last else 0) + 1
        prev = last.digest if last else GENESIS_HASH
        digest = checkpoint_digest(audit_key, seq, prev, now, entries)
        last = AuditCheckpoint(
            seq=seq, created_at=now, entries=len(entries), prev_digest=prev, digest=digest
        )
        repo.add_checkpoint(last, entries)
    session.commit()  # the checkpoint stands before its anchor is written
    if last is None:
        return AnchorResult(False, 0, None, None, lock)
    wrote = False
    if anchored is None or anchored.seq < last.seq:
        wrote = write_anchor(
            store, audit_key, seq=last.seq, digest=last.digest, now=now, retain_days=retain_days
        )
    return AnchorResult(
        bool(entries) or wrote, last.seq, last.digest, anchor_key(last.seq), lock, len(entries)
    )
