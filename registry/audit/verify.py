"""Verification: every chain (or one tenant's), the checkpoint chain, the newest anchors, and the
frozen legacy chain. The first problem found is reported with its chain, chain_seq and seq."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy.orm import Session

from registry.audit.anchors import CHECKPOINT_PREFIX, PREFIX, Anchor
from registry.audit.hashing import checkpoint_digest, event_hash
from registry.audit.repository import AuditRepository, Head
from registry.models import GENESIS_HASH, AuditEvent
from registry.models.audit_event import LEGACY_CHAIN, HashScheme, chain_of

Pin = tuple[int, int, str, int]  # chain_seq, seq, hash, checkpoint seq


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events_checked: int
    first_bad_seq: int | None = None  # global seq of the first bad event (None: not known)
    reason: str | None = None
    legacy_events: int = 0  # unkeyed events (written before the key existed)
    anchors: int = 0  # checkpoint anchors found in the object store
    last_anchor_seq: int | None = None  # the checkpoint the newest anchor pins
    object_lock: bool | None = None  # whether the store locks anchors (None: not checked)
    first_bad_chain: str | None = None
    first_bad_chain_seq: int | None = None
    chains: int = 0  # chains walked (legacy included)
    checkpoints: int = 0  # checkpoints checked (one tenant: those that recorded its chain)
    last_checkpoint_seq: int | None = None
    legacy_anchors: int = 0  # anchors of the legacy global chain (before 0013)


class Broken(Exception):
    def __init__(self, reason: str, chain: str | None, chain_seq: int | None, seq: int | None):
        super().__init__(reason)
        self.reason, self.chain, self.chain_seq, self.seq = reason, chain, chain_seq, seq


def _content(event: AuditEvent) -> str:
    return (
        f"content does not match its hash ({event.hash_scheme.value}): the event was altered, "
        "or LORAPLEX_AUDIT_KEY_FILE is not the key it was written with"
    )


class Walker:
    """One verification pass; counts what it checked so far (for the report)."""

    def __init__(self, session: Session, key: bytes) -> None:
        self.repo = AuditRepository(session)
        self.key = key
        self.events = self.legacy = self.chains = self.checkpoints = 0
        self.last_checkpoint: int | None = None

    def checkpoint_chain(self, anchored: Anchor | None) -> dict[str, Pin]:
        """Walk every checkpoint: gapless, linked, digests recompute; the newest pin per chain."""
        pins: dict[str, Pin] = {}
        prev, expected = GENESIS_HASH, 1
        for cp in self.repo.checkpoints():
            where = f"checkpoint {expected}"
            if cp.seq != expected:
                raise Broken(f"{where} is missing (gap in the checkpoint chain)", None, None, None)
            entries = self.repo.entries(cp.seq)
            if cp.prev_digest != prev:
                raise Broken(f"{where}: prev_digest does not link", None, None, None)
            digest = checkpoint_digest(self.key, cp.seq, prev, cp.created_at, entries)
            if len(entries) != cp.entries or digest != cp.digest:
                raise Broken(
                    f"{where} was altered (its digest does not recompute)", None, None, None
                )
            for chain, chain_seq, seq, hash_ in entries:
                if chain in pins and chain_seq < pins[chain][0]:
                    raise Broken(f"{where} moves chain {chain} backwards", chain, chain_seq, seq)
                pins[chain] = (chain_seq, seq, hash_, cp.seq)
            prev, expected = cp.digest, expected + 1
            self.checkpoints += 1
        self.last_checkpoint = expected - 1 or None
        self.check_anchor(anchored, expected - 1, prev)
        return pins

    def check_anchor(self, anchored: Anchor | None, last: int, last_digest: str) -> None:
        if anchored is None:
            return
        if anchored.seq > last:
            raise Broken(
                f"the checkpoints end at {last} but anchor {anchored.key} records checkpoint "
                f"{anchored.seq}: checkpoints were cut from the end",
                None,
                None,
                None,
            )
        row = self.repo.checkpoint(anchored.seq)
        digest = last_digest if anchored.seq == last else (row.digest if row else None)
        if digest != anchored.hash:
            raise Broken(
                f"checkpoint {anchored.seq} differs from anchor {anchored.key}: it was rewritten "
                "after it was anchored",
                None,
                None,
                None,
            )

    def legacy_chain(self, head: Head | None, pin: Pin | None, anchor: Anchor | None) -> None:
        """The frozen global chain from before 0013: seq gapless, as the code then checked."""
        prev, expected, keyed = GENESIS_HASH, 1, False
        for event in self.repo.iter_legacy():
            bad = None
            if event.seq != expected:
                raise Broken("event missing (gap in seq)", LEGACY_CHAIN, expected, expected)
            if event.prev_hash != prev:
                bad = "prev_hash does not link"
            elif event.hash_scheme == HashScheme.SHA256 and keyed:
                bad = "unkeyed (sha256) event after keyed ones: the chain was downgraded"
            elif event.hash_scheme == HashScheme.HMAC_CHAIN:
                bad = "a per-chain event in the legacy chain"
            elif event_hash(event, self.key) != event.hash:
                bad = _content(event)
            elif anchor is not None and event.seq == anchor.seq and event.hash != anchor.hash:
                bad = (
                    f"hash differs from anchor {anchor.key}: this or an earlier event was "
                    "rewritten after it was anchored"
                )
            if bad:
                raise Broken(bad, LEGACY_CHAIN, event.seq, event.seq)
            keyed = keyed or event.hash_scheme == HashScheme.HMAC_SHA256
            self.legacy += event.hash_scheme == HashScheme.SHA256
            prev, expected = event.hash, expected + 1
            self.events += 1
        n = expected - 1
        if n:
            self.chains += 1
        self._tail(LEGACY_CHAIN, n, prev, head, pin)
        if anchor is not None and anchor.seq > n:
            raise Broken(
                f"the chain ends at seq {n} but anchor {anchor.key} records seq {anchor.seq}: "
                "events were cut from the end",
                LEGACY_CHAIN,
                n + 1,
                n + 1,
            )

    def _tail(self, chain: str, n: int, last_hash: str, head: Head | None, pin: Pin | None) -> None:
        """After a chain's last event (`n`): its head and its newest checkpoint agree."""
        if pin is not None and pin[0] > n:
            seq = pin[1] if pin[0] == n + 1 else None
            raise Broken(
                f"chain {chain} ends at chain_seq {n} but checkpoint {pin[3]} records chain_seq "
                f"{pin[0]}: events were cut from the end",
                chain,
                n + 1,
                seq,
            )
        if head is None:
            if n:
                raise Broken(f"chain {chain} has events but no head row", chain, n, None)
            return
        if head[0] != n or head[2] != last_hash:
            seq = head[1] if head[0] == n + 1 else None
            raise Broken(
                f"events missing at the end of chain {chain} (its head records chain_seq "
                f"{head[0]})",
                chain,
                n + 1,
                seq,
            )

    def chain_events(
        self,
        events: Iterator[AuditEvent],
        heads: dict[str, Head],
        pins: dict[str, Pin],
        only: str | None = None,
    ) -> set[str]:
        """Walk per-chain events in (chain, chain_seq) order; return the chains seen."""
        seen: set[str] = set()
        chain, n, prev, last_seq = None, 0, GENESIS_HASH, 0
        for event in events:
            if event.chain != chain:
                if chain is not None:
                    self._tail(chain, n, prev, heads.get(chain), pins.get(chain))
                chain, n, prev, last_seq = event.chain, 0, GENESIS_HASH, 0
                seen.add(chain)
                self.chains += 1
            where = (event.chain, event.chain_seq, event.seq)
            if event.chain_seq != n + 1:
                raise Broken(f"event missing (gap at chain_seq {n + 1})", chain, n + 1, event.seq)
            pin = pins.get(chain)
            if event.prev_hash != prev:
                bad = "prev_hash does not link"
            elif event.hash_scheme != HashScheme.HMAC_CHAIN:
                bad = f"a {event.hash_scheme.value} event in a per-chain log: it was downgraded"
            elif event.seq <= last_seq:
                bad = "seq goes backwards along the chain: events were reordered"
            elif chain != chain_of(event.tenant_id):
                bad = f"an event of {chain_of(event.tenant_id)} in chain {chain}: it was moved"
            elif event_hash(event, self.key) != event.hash:
                bad = _content(event)
            elif pin is not None and pin[0] == event.chain_seq and pin[2] != event.hash:
                bad = f"hash differs from checkpoint {pin[3]}: rewritten after it was checkpointed"
            else:
                bad = None
            if bad:
                raise Broken(bad, *where)
            n, prev, last_seq = n + 1, event.hash, event.seq
            self.events += 1
        if chain is not None:
            self._tail(chain, n, prev, heads.get(chain), pins.get(chain))
        if only is not None and only not in seen:
            self._tail(only, 0, GENESIS_HASH, heads.get(only), pins.get(only))
        return seen

    def missing_chains(self, seen: set[str], heads: dict[str, Head], pins: dict[str, Pin]) -> None:
        """Chains that have a head or a checkpoint entry but no event left at all."""
        for chain in sorted((set(heads) | set(pins)) - seen - {LEGACY_CHAIN}):
            self._tail(chain, 0, GENESIS_HASH, heads.get(chain), pins.get(chain))

    def tenant_pin(self, chain: str, anchored: Anchor | None) -> dict[str, Pin]:
        """One chain's newest checkpoint entry, authenticated by recomputing its checkpoint's
        digest, and the newest anchor against its checkpoint (not the whole checkpoint chain:
        the global verify walks that)."""
        if anchored is not None:
            cp = self.repo.checkpoint(anchored.seq)
            if (
                cp is None
                or cp.digest != anchored.hash
                or cp.digest
                != checkpoint_digest(
                    self.key, cp.seq, cp.prev_digest, cp.created_at, self.repo.entries(cp.seq)
                )
            ):
                raise Broken(
                    f"checkpoint {anchored.seq} is missing, altered, or differs from anchor "
                    f"{anchored.key}: checkpoints were cut or rewritten",
                    None,
                    None,
                    None,
                )
        entry = self.repo.newest_entry(chain)
        if entry is None:
            return {}
        cp = self.repo.checkpoint(entry.checkpoint_seq)
        entries = self.repo.entries(entry.checkpoint_seq)
        if cp is None or cp.digest != checkpoint_digest(
            self.key, cp.seq, cp.prev_digest, cp.created_at, entries
        ):
            raise Broken(
                f"checkpoint {entry.checkpoint_seq} was altered (its digest does not recompute)",
                chain,
                entry.chain_seq,
                entry.seq,
            )
        self.checkpoints = 1
        self.last_checkpoint = cp.seq
        return {chain: (entry.chain_seq, entry.seq, entry.hash, cp.seq)}


__all__ = ["CHECKPOINT_PREFIX", "PREFIX", "Broken", "VerifyResult", "Walker"]
