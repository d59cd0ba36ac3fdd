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


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next_after_seq: int | None


class VerifyOut(BaseModel):
    ok: bool
    events_checked: int
    first_bad_seq: int | None
    reason: str | None
    legacy_events: int  # unkeyed events from before the audit key existed
    anchors: int
    last_anchor_seq: int | None
    object_lock: bool | None  # anchors locked by S3 Object Lock (None: could not tell)


class AnchorOut(BaseModel):
    created: bool  # False: the head was already anchored, or the chain is empty
    seq: int
    hash: str | None
    key: str | None
    object_lock: bool
