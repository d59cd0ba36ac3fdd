"""Route changes announced to the gateways (PostgreSQL LISTEN/NOTIFY).

Anything that changes which version a model name is served by (an alias set or deleted, a
version's status, an archived adapter, a traffic split) calls `announce` in the transaction
that makes the change. PostgreSQL holds the notification until the commit and drops it on a
rollback, so a gateway never hears of a change that did not happen, and never before the new
rows are visible to it. Gateways (`serving.gateway.notify.RouteListener`) drop their cached
routes of that tenant at once; their short TTL stays as the fallback for a missed message.
Identical notifications in one transaction are delivered once (PostgreSQL folds them).

SQLite (the embedded default, one process): nothing is sent; the TTL alone applies.
"""

from __future__ import annotations

import json
import uuid

from sqlalchemy import text
from sqlalchemy.orm import Session

CHANNEL = "loraplex_routes"


def payload(tenant_id: uuid.UUID, adapter_id: uuid.UUID | None) -> str:
    """The message: `{"tenant": "<uuid>", "adapter": "<uuid>" | null}`."""
    return json.dumps(
        {"tenant": str(tenant_id), "adapter": str(adapter_id) if adapter_id else None},
        separators=(",", ":"),
    )


def announce(session: Session, tenant_id: uuid.UUID, adapter_id: uuid.UUID | None) -> None:
    """Tell the gateways, once this transaction commits, that the tenant's routes changed
    (`adapter_id`: which adapter, for the log; None: several or unknown)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": CHANNEL, "payload": payload(tenant_id, adapter_id)},
    )
