"""The audit log: every mutation appends one event in the same transaction, hash-chained."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from registry.audit.repository import AuditRepository
from registry.auth.principal import Principal
from registry.db import utcnow
from registry.models import GENESIS_HASH, AuditEvent


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


def compute_hash(event: AuditEvent) -> str:
    return hashlib.sha256(_canonical(event)).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events_checked: int
    first_bad_seq: int | None = None
    reason: str | None = None


class AuditService:
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
        )
        event.hash = compute_hash(event)
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

    def verify(self, session: Session) -> VerifyResult:
        """Walk the whole chain: seq gapless, links intact, every hash recomputes, tip matches."""
        repo = AuditRepository(session)
        expected_prev, expected_seq, checked = GENESIS_HASH, 1, 0
        for event in repo.iter_all():
            if event.seq != expected_seq:
                return VerifyResult(False, checked, expected_seq, "event missing (gap in seq)")
            if event.prev_hash != expected_prev:
                return VerifyResult(False, checked, event.seq, "prev_hash does not link")
            if compute_hash(event) != event.hash:
                return VerifyResult(False, checked, event.seq, "content does not match its hash")
            expected_prev, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
        head = repo.head()
        if head.last_seq != checked or head.last_hash != expected_prev:
            return VerifyResult(False, checked, checked + 1, "events missing at the end of the log")
        return VerifyResult(True, checked)


audit = AuditService()
