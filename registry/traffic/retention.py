"""Retention: captured traffic older than its adapter's retention is deleted (the periodic task
`loraplex.traffic_retention`, or `loraplex traffic expire` by hand).

Per adapter with capture settings, its `retention_seconds`; every other adapter, the platform's
`LORAPLEX_TRAFFIC_RETENTION_SECONDS`. Rows (prompts and full traces) go in batches; each batch
is committed after the trace objects that no remaining row points at were deleted, so a failure
leaves expired rows (deleted by the next run), never an object nothing points at. Feedback
created before the same cutoff is deleted too (it holds corrections: user data).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import structlog
from sqlalchemy.orm import Session

from registry.db import utcnow
from registry.settings import Settings
from registry.storage import ObjectStore
from registry.traffic.repository import ExpiryRepository

log = structlog.get_logger(__name__)
BATCH_ROWS = 5000


@dataclass
class Expired:
    rows: int = 0
    objects: int = 0
    feedback: int = 0


def expire_traces(
    session: Session,
    *,
    store: ObjectStore,
    settings: Settings,
    now: dt.datetime | None = None,
    batch: int = BATCH_ROWS,
) -> Expired:
    """Delete expired traffic platform-wide. Commits once per batch."""
    now = now or utcnow()
    repo = ExpiryRepository(session)
    scopes = [*repo.retentions(), (None, settings.traffic_retention_seconds)]
    out = Expired()
    for adapter_id, seconds in scopes:
        cutoff = now - dt.timedelta(seconds=seconds)
        while True:
            expired = repo.expired_samples(cutoff, adapter_id, batch)
            if not expired:
                break
            out.rows += repo.delete_samples([i for i, _ in expired])
            keys = {k for _, k in expired if k}
            for key in sorted(keys - repo.referenced(keys)):
                store.delete(key)  # before the commit: a failure leaves rows, not orphans
                out.objects += 1
            session.commit()
            if len(expired) < batch:
                break
        out.feedback += repo.delete_feedback(cutoff, adapter_id)
        session.commit()
    log.info("traffic.expired", rows=out.rows, objects=out.objects, feedback=out.feedback)
    return out
