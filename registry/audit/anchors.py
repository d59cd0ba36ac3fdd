"""Anchors: the audit chain's head copied, signed, into write-once objects outside the database.

One object per anchor, `audit/anchors/<seq, 20 digits>.json` = {seq, hash, anchored_at, mac},
where `mac` is HMAC-SHA256 under the audit key. `put_new` refuses to replace an object, and on
an S3 bucket with Object Lock each anchor is also locked for `audit_anchor_retention_days`.
Someone who can write the database but not the store, or lacks the key, can then neither cut
events up to the newest anchor nor rewrite them unnoticed (`AuditService.verify` checks both).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass

from sqlalchemy.orm import Session

from registry.audit.repository import AuditRepository
from registry.errors import Conflict, ServiceUnavailable
from registry.storage import ObjectExists, ObjectStore, StorageError

PREFIX = "audit/anchors/"
_MAC_CONTEXT = b"loraplex-audit-anchor-v1\n"


class AuditChainBroken(Conflict):
    """The chain contradicts its anchors; anchoring it now would bless the damage."""


class InvalidAnchor(Exception):
    """An anchor object that is malformed or whose MAC does not match."""


@dataclass(frozen=True)
class Anchor:
    key: str
    seq: int
    hash: str
    anchored_at: str


@dataclass(frozen=True)
class AnchorResult:
    created: bool  # False: the head was already anchored (or the chain is empty)
    seq: int
    hash: str | None
    key: str | None
    object_lock: bool


def anchor_key(seq: int) -> str:
    return f"{PREFIX}{seq:020d}.json"


def _mac(audit_key: bytes, seq: int, hash_: str, anchored_at: str) -> str:
    body = json.dumps({"seq": seq, "hash": hash_, "anchored_at": anchored_at}, sort_keys=True)
    return hmac.new(audit_key, _MAC_CONTEXT + body.encode(), hashlib.sha256).hexdigest()


def encode_anchor(audit_key: bytes, seq: int, hash_: str, anchored_at: dt.datetime) -> bytes:
    at = anchored_at.astimezone(dt.UTC).isoformat(timespec="microseconds")
    body = {"seq": seq, "hash": hash_, "anchored_at": at, "mac": _mac(audit_key, seq, hash_, at)}
    return json.dumps(body, sort_keys=True).encode()


def decode_anchor(audit_key: bytes, key: str, data: bytes) -> Anchor:
    """Parse and authenticate one anchor object; raise InvalidAnchor saying what is wrong."""
    try:
        body = json.loads(data)
        seq, hash_, at, mac = body["seq"], body["hash"], body["anchored_at"], body["mac"]
        if not (isinstance(seq, int) and all(isinstance(v, str) for v in (hash_, at, mac))):
            raise TypeError("wrong field types")
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidAnchor(f"anchor {key} is malformed ({e})") from None
    if key != anchor_key(seq):
        raise InvalidAnchor(f"anchor {key} records seq {seq}: it was moved or renamed")
    if not hmac.compare_digest(mac, _mac(audit_key, seq, hash_, at)):
        raise InvalidAnchor(
            f"anchor {key}: its MAC does not match (forged, or a wrong LORAPLEX_AUDIT_KEY_FILE)"
        )
    return Anchor(key=key, seq=seq, hash=hash_, anchored_at=at)


def anchor_keys(store: ObjectStore) -> list[str]:
    """Every anchor's key, oldest first (zero-padded seqs sort as numbers)."""
    try:
        return sorted(k for k in store.list_keys(PREFIX) if k.endswith(".json"))
    except StorageError as e:
        raise ServiceUnavailable(f"cannot list the audit anchors in the object store: {e}") from e


def read_anchor(store: ObjectStore, audit_key: bytes, key: str) -> Anchor:
    try:
        data = store.get_bytes(key)
    except StorageError as e:
        raise ServiceUnavailable(f"cannot read audit anchor {key}: {e}") from e
    return decode_anchor(audit_key, key, data)


def anchor_head(
    session: Session, *, store: ObjectStore, audit_key: bytes, retain_days: int, now: dt.datetime
) -> AnchorResult:
    """Write an anchor for the chain's current head, unless it is anchored already.

    Refuses (409) when the head contradicts the newest anchor or its own tip event.
    """
    repo = AuditRepository(session)
    head = repo.head()
    try:
        lock = store.object_lock()
    except StorageError as e:
        raise ServiceUnavailable(f"object store unavailable for audit anchors: {e}") from e
    keys = anchor_keys(store)
    if keys:
        try:
            newest = read_anchor(store, audit_key, keys[-1])
        except InvalidAnchor as e:
            raise AuditChainBroken(str(e)) from None
        if newest.seq > head.last_seq or (
            newest.seq == head.last_seq and newest.hash != head.last_hash
        ):
            raise AuditChainBroken(
                f"the chain's head (seq {head.last_seq}) contradicts anchor {newest.key} "
                f"(seq {newest.seq}): events were cut or rewritten; run GET /v1/audit/verify"
            )
        if newest.seq == head.last_seq:
            return AnchorResult(False, newest.seq, newest.hash, newest.key, lock)
    if head.last_seq == 0:
        return AnchorResult(False, 0, None, None, lock)
    tip = repo.get(head.last_seq)
    if tip is None or tip.hash != head.last_hash:
        raise AuditChainBroken(
            f"the chain's head (seq {head.last_seq}) does not match its last event; "
            "run GET /v1/audit/verify"
        )
    key = anchor_key(head.last_seq)
    data = encode_anchor(audit_key, head.last_seq, head.last_hash, now)
    try:
        store.put_new(key, data, retain_days=retain_days)
    except ObjectExists:  # a concurrent anchorer wrote this seq first: fine if it agrees
        other = read_anchor(store, audit_key, key)
        if other.hash != head.last_hash:
            raise AuditChainBroken(
                f"anchor {key} records another hash for seq {other.seq}"
            ) from None
        return AnchorResult(False, other.seq, other.hash, key, lock)
    except StorageError as e:
        raise ServiceUnavailable(f"cannot write audit anchor {key}: {e}") from e
    return AnchorResult(True, head.last_seq, head.last_hash, key, lock)
