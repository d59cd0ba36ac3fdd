"""The audit log: every mutation appends one event in the same transaction, hash-chained.

Each `hash` is HMAC-SHA256 under a key kept outside the database (LORAPLEX_AUDIT_KEY_FILE), so
write access to the database alone cannot re-chain the log; anchors in the object store
(`registry.audit.anchors`) pin the head so that cutting the tail is seen too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session

from registry.audit.anchors import (
    Anchor,
    AnchorResult,
    InvalidAnchor,
    anchor_head,
    anchor_keys,
    read_anchor,
)
from registry.audit.repository import AuditRepository
from registry.auth.keys import load_audit_key
from registry.auth.principal import Principal
from registry.db import utcnow
from registry.models import GENESIS_HASH, AuditEvent
from registry.models.audit_event import HashScheme
from registry.settings import get_settings
from registry.storage import ObjectStore, StorageError


def _canonical(event: AuditEvent) -> bytes:
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
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compute_hash(event: AuditEvent, key: bytes | None) -> str:
    """HMAC-SHA256 under `key`; with None, the legacy plain SHA-256 (events before 0007)."""
    if key is None:
        return hashlib.sha256(_canonical(event)).hexdigest()
    return hmac.new(key, _canonical(event), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events_checked: int
    first_bad_seq: int | None = None
    reason: str | None = None
    legacy_events: int = 0  # unkeyed events (written before the key existed)
    anchors: int = 0  # anchors found in the object store
    last_anchor_seq: int | None = None
    object_lock: bool | None = None  # whether the store locks anchors (None: not checked)


class AuditService:
    def __init__(self) -> None:
        self._key: bytes | None = None

    def use_key(self, key: bytes) -> None:
        """Set this process's HMAC key (the app factory does, from its settings)."""
        self._key = key

    @property
    def key(self) -> bytes:
        """The HMAC key; a process that set none uses the one its environment's settings name.

        A process-wide value because `record` is called from every write path, which would
        otherwise all have to carry it."""
        if self._key is None:
            self._key = load_audit_key(get_settings())
        return self._key

    def record(
        self,
        session: Session,
        *,
        actor: Principal,
        action: str,
        target_type: str,
        target_id: str,
        tenant_id: uuid.UUID | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEvent:
        repo = AuditRepository(session)
        head = repo.lock_head()  # serializes appenders until this transaction ends
        # Round-trip details through JSON so the hash covers exactly what the database returns.
        clean = json.loads(json.dumps(details or {}, default=str))
        event = AuditEvent(
            seq=head.last_seq + 1,
            occurred_at=utcnow(),
            actor=actor.subject,
            actor_role=actor.role.value,
            tenant_id=tenant_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            details=clean,
            prev_hash=head.last_hash,
            hash_scheme=HashScheme.HMAC_SHA256,
        )
        event.hash = compute_hash(event, self.key)
        repo.add(event)
        head.last_seq, head.last_hash = event.seq, event.hash
        session.flush()
        return event

    def list(
        self,
        session: Session,
        *,
        tenant_id: uuid.UUID | None = None,
        action: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        after_seq: int = 0,
        limit: int = 100,
    ) -> Sequence[AuditEvent]:
        return AuditRepository(session).list(
            tenant_id=tenant_id,
            action=action,
            since=since,
            until=until,
            after_seq=after_seq,
            limit=limit,
        )

    def anchor(self, session: Session, *, store: ObjectStore, retain_days: int) -> AnchorResult:
        """Anchor the chain's head in `store` (write-once; see `registry.audit.anchors`)."""
        return anchor_head(
            session, store=store, audit_key=self.key, retain_days=retain_days, now=utcnow()
        )

    def verify(self, session: Session, *, store: ObjectStore | None = None) -> VerifyResult:
        """Walk the whole chain: seq gapless, links intact, every hash (HMAC for all events
        after the first keyed one) recomputes, tip matches the head, and, with `store`, the
        newest anchor's event has its hash and the chain reaches at least that far."""
        key = self.key
        anchors, newest, lock = 0, None, None
        if store is not None:
            keys = anchor_keys(store)
            try:
                lock = store.object_lock()
            except StorageError:
                lock = None
            anchors = len(keys)
            if keys:
                try:
                    newest = read_anchor(store, key, keys[-1])
                except InvalidAnchor as e:
                    return VerifyResult(False, 0, None, str(e), anchors=anchors, object_lock=lock)
        result = self._walk(session, key, newest)
        last = newest.seq if newest else None
        return replace(result, anchors=anchors, last_anchor_seq=last, object_lock=lock)

    def _walk(self, session: Session, key: bytes, newest: Anchor | None) -> VerifyResult:
        repo = AuditRepository(session)
        expected_prev, expected_seq, checked, legacy = GENESIS_HASH, 1, 0, 0
        keyed = False
        for event in repo.iter_all():
            bad = None
            if event.seq != expected_seq:
                return VerifyResult(False, checked, expected_seq, "event missing (gap in seq)")
            if event.prev_hash != expected_prev:
                bad = "prev_hash does not link"
            elif event.hash_scheme == HashScheme.SHA256 and keyed:
                bad = "unkeyed (sha256) event after keyed ones: the chain was downgraded"
            elif compute_hash(event, None if event.hash_scheme == HashScheme.SHA256 else key) != (
                event.hash
            ):
                bad = (
                    f"content does not match its hash ({event.hash_scheme.value}): the event "
                    "was altered, or LORAPLEX_AUDIT_KEY_FILE is not the key it was written with"
                )
            elif newest is not None and event.seq == newest.seq and event.hash != newest.hash:
                bad = (
                    f"hash differs from anchor {newest.key}: this or an earlier event was "
                    "rewritten after it was anchored"
                )
            if bad:
                return VerifyResult(False, checked, event.seq, bad, legacy)
            keyed = keyed or event.hash_scheme == HashScheme.HMAC_SHA256
            legacy += event.hash_scheme == HashScheme.SHA256
            expected_prev, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
        head = repo.head()
        if head.last_seq != checked or head.last_hash != expected_prev:
            return VerifyResult(
                False, checked, checked + 1, "events missing at the end of the log", legacy
            )
        if newest is not None and newest.seq > checked:
            reason = (
                f"the chain ends at seq {checked} but anchor {newest.key} records seq "
                f"{newest.seq}: events were cut from the end"
            )
            return VerifyResult(False, checked, checked + 1, reason, legacy)
        return VerifyResult(True, checked, legacy_events=legacy)


audit = AuditService()
