"""Anchors: audit checkpoints copied, signed, into write-once objects outside the database.

From 0013, one object per checkpoint, `audit/checkpoints/<checkpoint seq, 20 digits>.json` =
{seq, hash (the checkpoint's digest), anchored_at, mac}, mac = HMAC-SHA256 under the audit key.
Before 0013 the legacy global chain's head was anchored as `audit/anchors/<seq>.json` (same
body; seq and hash of an event): those are still read, to check the frozen legacy chain.
`put_new` refuses to replace an object, and on an S3 bucket with Object Lock each anchor is also
locked for `audit_anchor_retention_days`. Someone who can write the database but not the store,
or lacks the key, can then neither cut checkpoints or events up to the newest anchor nor rewrite
them unnoticed (`registry.audit.verify` checks both).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass

from registry.errors import Conflict, ServiceUnavailable
from registry.storage import ObjectExists, ObjectStore, StorageError

PREFIX = "audit/anchors/"  # legacy: the global chain's head (before 0013)
CHECKPOINT_PREFIX = "audit/checkpoints/"
_MAC_CONTEXT = b"loraplex-audit-anchor-v1\n"
_CHECKPOINT_MAC_CONTEXT = b"loraplex-audit-checkpoint-anchor-v1\n"


class AuditChainBroken(Conflict):
    """The log contradicts its checkpoints or anchors; checkpointing it now would bless it."""


class InvalidAnchor(Exception):
    """An anchor object that is malformed or whose MAC does not match."""


@dataclass(frozen=True)
class Anchor:
    key: str
    seq: int  # legacy: an event's seq; checkpoint anchors: the checkpoint's seq
    hash: str  # legacy: the event's hash; checkpoint anchors: the checkpoint's digest
    anchored_at: str


@dataclass(frozen=True)
class AnchorResult:
    created: bool  # False: nothing changed since the newest checkpoint, already anchored
    seq: int  # the newest checkpoint's seq (0: none yet)
    hash: str | None  # its digest
    key: str | None  # its anchor object
    object_lock: bool
    entries: int = 0  # chains the new checkpoint recorded (0 when none was created)


def anchor_key(seq: int, prefix: str = CHECKPOINT_PREFIX) -> str:
    return f"{prefix}{seq:020d}.json"


def _context(prefix: str) -> bytes:
    return _MAC_CONTEXT if prefix == PREFIX else _CHECKPOINT_MAC_CONTEXT


def _mac(audit_key: bytes, prefix: str, seq: int, hash_: str, anchored_at: str) -> str:
    body = json.dumps({"seq": seq, "hash": hash_, "anchored_at": anchored_at}, sort_keys=True)
    return hmac.new(audit_key, _context(prefix) + body.encode(), hashlib.sha256).hexdigest()


def encode_anchor(
    audit_key: bytes,
    seq: int,
    hash_: str,
    anchored_at: dt.datetime,
    prefix: str = CHECKPOINT_PREFIX,
) -> bytes:
    at = anchored_at.astimezone(dt.UTC).isoformat(timespec="microseconds")
    mac = _mac(audit_key, prefix, seq, hash_, at)
    return json.dumps(
        {"seq": seq, "hash": hash_, "anchored_at": at, "mac": mac}, sort_keys=True
    ).encode()


def decode_anchor(audit_key: bytes, key: str, data: bytes) -> Anchor:
    """Parse and authenticate one anchor object; raise InvalidAnchor saying what is wrong."""
    prefix = PREFIX if key.startswith(PREFIX) else CHECKPOINT_PREFIX
    try:
        body = json.loads(data)
        seq, hash_, at, mac = body["seq"], body["hash"], body["anchored_at"], body["mac"]
        if not (isinstance(seq, int) and all(isinstance(v, str) for v in (hash_, at, mac))):
            raise TypeError("wrong field types")
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidAnchor(f"anchor {key} is malformed ({e})") from None
    if key != anchor_key(seq, prefix):
        raise InvalidAnchor(f"anchor {key} records seq {seq}: it was moved or renamed")
    if not hmac.compare_digest(mac, _mac(audit_key, prefix, seq, hash_, at)):
        raise InvalidAnchor(
            f"anchor {key}: its MAC does not match (forged, or a wrong LORAPLEX_AUDIT_KEY_FILE)"
        )
    return Anchor(key=key, seq=seq, hash=hash_, anchored_at=at)


def anchor_keys(store: ObjectStore, prefix: str = CHECKPOINT_PREFIX) -> list[str]:
    """Every anchor's key under `prefix`, oldest first (zero-padded seqs sort as numbers)."""
    try:
        return sorted(k for k in store.list_keys(prefix) if k.endswith(".json"))
    except StorageError as e:
        raise ServiceUnavailable(f"cannot list the audit anchors in the object store: {e}") from e


def read_anchor(store: ObjectStore, audit_key: bytes, key: str) -> Anchor:
    try:
        data = store.get_bytes(key)
    except StorageError as e:
        raise ServiceUnavailable(f"cannot read audit anchor {key}: {e}") from e
    return decode_anchor(audit_key, key, data)


def newest_anchor(store: ObjectStore, audit_key: bytes, prefix: str) -> tuple[int, Anchor | None]:
    """(how many anchors, the newest one authenticated); InvalidAnchor if it does not verify."""
    keys = anchor_keys(store, prefix)
    return len(keys), (read_anchor(store, audit_key, keys[-1]) if keys else None)


def write_anchor(
    store: ObjectStore,
    audit_key: bytes,
    *,
    seq: int,
    digest: str,
    now: dt.datetime,
    retain_days: int,
) -> bool:
    """Anchor checkpoint `seq` write-once; False when it already was (with the same digest)."""
    key = anchor_key(seq)
    try:
        store.put_new(key, encode_anchor(audit_key, seq, digest, now), retain_days=retain_days)
    except ObjectExists:  # a concurrent anchorer wrote it first: fine if it agrees
        other = read_anchor(store, audit_key, key)
        if other.hash != digest:
            raise AuditChainBroken(
                f"anchor {key} records another digest for checkpoint {seq}"
            ) from None
        return False
    except StorageError as e:
        raise ServiceUnavailable(f"cannot write audit anchor {key}: {e}") from e
    return True
