"""The audit log: every mutation appends events in the same transaction, hash-chained per tenant.

Each tenant has its own chain (`tenant:<uuid>`), events with no tenant go to `platform`, and
events from before 0013 stay in the frozen `legacy` chain. `record` and `record_many` queue events
on the session; at commit (`before_commit`) the queued ones are appended set-based: the heads of
their chains are locked in one statement in chain order (so transactions appending to several
chains cannot deadlock, whichever order they recorded in), then one multi-row INSERT. A savepoint
that rolls back drops the events recorded inside it. Each `hash` is HMAC-SHA256 under a key kept
outside the database (LORAPLEX_AUDIT_KEY_FILE); checkpoints fold the changed heads into a chained
digest anchored write-once in the object store (`registry.audit.checkpoints`).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from registry.audit.anchors import (
    CHECKPOINT_PREFIX,
    PREFIX,
    AnchorResult,
    InvalidAnchor,
    newest_anchor,
)
from registry.audit.checkpoints import checkpoint_and_anchor
from registry.audit.hashing import canonical, compute_hash
from registry.audit.repository import AuditRepository
from registry.audit.verify import Broken, VerifyResult, Walker
from registry.auth.keys import load_audit_key
from registry.auth.principal import Principal
from registry.db import utcnow
from registry.models import AuditEvent
from registry.models.audit_event import LEGACY_CHAIN, HashScheme, chain_of
from registry.settings import get_settings
from registry.storage import ObjectStore, StorageError

log = structlog.get_logger(__name__)
_PENDING = "audit_pending"
_canonical = canonical  # the name older callers import

__all__ = ["AuditItem", "AuditService", "VerifyResult", "audit", "compute_hash"]


@dataclass(frozen=True)
class AuditItem:
    """One event for `AuditService.record_many` (the same fields as `record`)."""

    actor: Principal
    action: str
    target_type: str
    target_id: str
    tenant_id: uuid.UUID | None = None
    details: dict[str, Any] | None = None


@dataclass
class _Pending:
    event: AuditEvent
    savepoint: SessionTransaction | None  # the innermost savepoint when it was recorded


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
        """Queue one event; it gets its seq, chain_seq and hash when the transaction commits."""
        item = AuditItem(actor, action, target_type, target_id, tenant_id, details)
        return self._queue(session, [item])[0]

    def record_many(self, session: Session, items: Sequence[AuditItem]) -> None:
        """Queue many events (a batch of scheduled retrains): appended with `record`'s at commit,
        each chain's head locked once, one multi-row INSERT."""
        self._queue(session, items)

    def _queue(self, session: Session, items: Sequence[AuditItem]) -> list[AuditEvent]:
        at = utcnow()
        savepoint = session.get_nested_transaction()
        pending: list[_Pending] = session.info.setdefault(_PENDING, [])
        out = []
        for item in items:
            # Round-trip details through JSON so the hash covers exactly what the database returns.
            clean = json.loads(json.dumps(item.details or {}, default=str))
            ev = AuditEvent(
                occurred_at=at,
                actor=item.actor.subject,
                actor_role=item.actor.role.value,
                tenant_id=item.tenant_id,
                action=item.action,
                target_type=item.target_type,
                target_id=item.target_id,
                details=clean,
                hash_scheme=HashScheme.HMAC_CHAIN,
                chain=chain_of(item.tenant_id),
            )
            pending.append(_Pending(ev, savepoint))
            out.append(ev)
        return out

    def flush(self, session: Session) -> int:
        """Append the events queued on `session` now (commit does it): lock their chains' heads
        in chain order, number, hash and insert them. Returns how many were appended."""
        pending: list[_Pending] = session.info.pop(_PENDING, [])
        if not pending:
            return 0
        events = [p.event for p in pending]
        repo = AuditRepository(session)
        heads, seqs = repo.lock_heads([e.chain for e in events], len(events))
        key, rows = self.key, []
        by_chain: dict[str, list[AuditEvent]] = {}
        for ev in events:  # the chains in order, each chain's events in the order recorded
            by_chain.setdefault(ev.chain, []).append(ev)
        it = iter(seqs)
        for chain in sorted(by_chain):
            n, _, prev = heads[chain]
            for ev in by_chain[chain]:
                n += 1
                ev.seq, ev.chain_seq, ev.prev_hash = next(it), n, prev
                ev.hash = prev = compute_hash(ev, key)
                rows.append(_row(ev))
            heads[chain] = (n, ev.seq, prev)
        repo.append(rows, {c: heads[c] for c in by_chain})
        return len(rows)

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
        """Checkpoint the heads changed since the last checkpoint, commit, and anchor it."""
        return checkpoint_and_anchor(
            session, store=store, audit_key=self.key, retain_days=retain_days, now=utcnow()
        )

    def verify(
        self,
        session: Session,
        *,
        store: ObjectStore | None = None,
        tenant_id: uuid.UUID | None = None,
    ) -> VerifyResult:
        """Global (tenant_id None): the checkpoint chain against the newest anchor, the legacy
        chain against its head, checkpoint and anchors, and every chain (gapless chain_seq,
        links, hashes, tip = head, reaching its newest checkpoint). One tenant: its chain, its
        newest checkpoint entry (digest recomputed) and the newest anchor's checkpoint."""
        walker = Walker(session, self.key)
        anchors = legacy_anchors = 0
        anchored = legacy_anchor = None
        lock = None
        if store is not None:
            try:
                lock = store.object_lock()
            except StorageError:
                lock = None
            try:
                anchors, anchored = newest_anchor(store, self.key, CHECKPOINT_PREFIX)
                if tenant_id is None:
                    legacy_anchors, legacy_anchor = newest_anchor(store, self.key, PREFIX)
            except InvalidAnchor as e:
                return VerifyResult(False, 0, None, str(e), anchors=anchors, object_lock=lock)
        bad: Broken | None = None
        repo = walker.repo
        try:
            if tenant_id is not None:
                chain = chain_of(tenant_id)
                pins = walker.tenant_pin(chain, anchored)
                head = repo.head(chain)
                heads = (
                    {chain: (head.last_chain_seq, head.last_seq, head.last_hash)} if head else {}
                )
                walker.chain_events(repo.iter_chains(chain), heads, pins, only=chain)
            else:
                pins = walker.checkpoint_chain(anchored)
                heads = repo.heads()
                walker.legacy_chain(heads.get(LEGACY_CHAIN), pins.get(LEGACY_CHAIN), legacy_anchor)
                seen = walker.chain_events(repo.iter_chains(), heads, pins)
                walker.missing_chains(seen, heads, pins)
        except Broken as e:
            bad = e
        return VerifyResult(
            ok=bad is None,
            events_checked=walker.events,
            first_bad_seq=bad.seq if bad else None,
            reason=bad.reason if bad else None,
            legacy_events=walker.legacy,
            anchors=anchors,
            last_anchor_seq=anchored.seq if anchored else None,
            object_lock=lock,
            first_bad_chain=bad.chain if bad else None,
            first_bad_chain_seq=bad.chain_seq if bad else None,
            chains=walker.chains,
            checkpoints=walker.checkpoints,
            last_checkpoint_seq=walker.last_checkpoint,
            legacy_anchors=legacy_anchors,
        )


def _row(ev: AuditEvent) -> dict[str, Any]:
    cols = AuditEvent.__table__.columns
    return {c.key: getattr(ev, c.key) for c in cols}


def _drop_rolled_back(session: Session, previous: SessionTransaction) -> None:
    """A savepoint rolled back: forget the events recorded inside it (or any savepoint in it);
    the whole transaction rolled back: forget them all."""
    pending: list[_Pending] | None = session.info.get(_PENDING)
    if not pending:
        return
    if not previous.nested:
        session.info.pop(_PENDING, None)
        return

    def inside(sp: SessionTransaction | None) -> bool:
        while sp is not None:
            if sp is previous:
                return True
            sp = sp.parent
        return False

    session.info[_PENDING] = [p for p in pending if not inside(p.savepoint)]


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    if session.get_nested_transaction() is None:  # the outermost commit, not a savepoint's
        audit.flush(session)


@event.listens_for(Session, "after_soft_rollback")
def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    _drop_rolled_back(session, previous)


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None and session.info.get(_PENDING):
        lost = session.info.pop(_PENDING)  # closed without a commit: nothing it wrote stands
        log.warning("audit.events_dropped", events=len(lost), reason="no commit")


audit = AuditService()
