"""What an audit event's hash covers, per HashScheme, and the checkpoint digest."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterable

from registry.models import AuditEvent
from registry.models.audit_event import HashScheme

_CHECKPOINT_CONTEXT = b"loraplex-audit-checkpoint-v1\n"

Entry = tuple[str, int, int, str]  # chain, chain_seq, seq, hash


def canonical(event: AuditEvent) -> bytes:
    """The bytes hashed: every column but `hash` and `hash_scheme`; `chain` and `chain_seq`
    only in the per-chain scheme (legacy events were hashed without them)."""
    body = {
        "seq": event.seq,
        "occurred_at": event.occurred_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor": event.actor,
        "actor_role": event.actor_role,
        "tenant_id": str(event.tenant_id) if event.tenant_id else None,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "details": event.details,
        "prev_hash": event.prev_hash,
    }
    if event.hash_scheme == HashScheme.HMAC_CHAIN:
        body["chain"] = event.chain
        body["chain_seq"] = event.chain_seq
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compute_hash(event: AuditEvent, key: bytes | None) -> str:
    """HMAC-SHA256 under `key`; with None, the legacy plain SHA-256 (events before 0007)."""
    if key is None:
        return hashlib.sha256(canonical(event)).hexdigest()
    return hmac.new(key, canonical(event), hashlib.sha256).hexdigest()


def event_hash(event: AuditEvent, key: bytes) -> str:
    """The hash `event` should carry under its own scheme."""
    return compute_hash(event, None if event.hash_scheme == HashScheme.SHA256 else key)


def checkpoint_digest(
    key: bytes, seq: int, prev_digest: str, created_at: dt.datetime, entries: Iterable[Entry]
) -> str:
    """HMAC(audit key, seq, prev_digest, created_at, the entries sorted by chain)."""
    mac = hmac.new(key, _CHECKPOINT_CONTEXT, hashlib.sha256)
    at = created_at.astimezone(dt.UTC).isoformat(timespec="microseconds")
    mac.update(f"{seq}\n{prev_digest}\n{at}\n".encode())
    for chain, chain_seq, event_seq, hash_ in sorted(entries):
        mac.update(f"{chain}\t{chain_seq}\t{event_seq}\t{hash_}\n".encode())
    return mac.hexdigest()
