from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    occurred_at: dt.datetime
    actor: str
    actor_role: str
    tenant_id: uuid.UUID | None
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]
    prev_hash: str
    hash: str
    chain: str  # tenant:<uuid>, platform, or legacy (events from before per-tenant chains)
    chain_seq: int | None  # gapless inside the chain (None: legacy events, ordered by seq)


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next_after_seq: int | None


class VerifyOut(BaseModel):
    ok: bool
    events_checked: int
    first_bad_seq: int | None  # global seq of the first bad event (None: not known, e.g. cut)
    reason: str | None
    legacy_events: int  # unkeyed events from before the audit key existed
    anchors: int  # checkpoint anchors in the object store
    last_anchor_seq: int | None  # the checkpoint the newest anchor pins
    object_lock: bool | None  # anchors locked by S3 Object Lock (None: could not tell)
    first_bad_chain: str | None
    first_bad_chain_seq: int | None
    chains: int  # chains walked
    checkpoints: int  # checkpoints checked (with ?tenant=: the one holding its newest entry)
    last_checkpoint_seq: int | None
    legacy_anchors: int  # anchors of the global chain from before per-tenant chains
    tenant: str | None  # the tenant whose chain alone was verified (None: everything)


class AnchorOut(BaseModel):
    created: bool  # False: no chain changed since the newest checkpoint, already anchored
    seq: int  # the newest checkpoint (0: none yet)
    hash: str | None  # its digest
    key: str | None  # its anchor object in the store
    object_lock: bool
    entries: int  # chains the new checkpoint recorded (0: none created)
