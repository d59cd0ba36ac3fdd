"""SQL over captured traffic: `traffic_samples` (prompts and full traces), `traffic_capture`
(per-adapter settings) and `feedback`.

`TrafficRepository` is one tenant's view (every statement starts from a tenant-filtered base);
`ExpiryRepository` is the platform-wide view that only the retention task uses.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import Select, and_, delete, exists, or_, select
from sqlalchemy.orm import Session

from registry.models import Adapter, AdapterVersion, Feedback, TrafficCapture, TrafficSample
from registry.models.enums import CaptureMode


@dataclass(frozen=True)
class TraceRow:
    """One traffic sample with what a listing shows next to it."""

    sample: TrafficSample
    adapter: str
    version: int | None
    feedback: Feedback | None


@dataclass(frozen=True)
class TraceQuery:
    adapter_id: uuid.UUID | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    ratings: Sequence[int] | None = None  # only traces with feedback rated so
    captured: CaptureMode | None = None
    before: tuple[dt.datetime, int] | None = None  # keyset: (created_at, id) of the last seen
    limit: int = 50


class TrafficRepository:
    """One tenant's captured traffic, capture settings and feedback."""

    def __init__(self, session: Session, tenant_id: uuid.UUID) -> None:
        self.session, self.tenant_id = session, tenant_id

    def _samples(self) -> Select[TrafficSample]:
        return select(TrafficSample).where(TrafficSample.tenant_id == self.tenant_id)

    def _captures(self) -> Select[TrafficCapture]:
        return select(TrafficCapture).where(TrafficCapture.tenant_id == self.tenant_id)

    # --- capture settings ---------------------------------------------------------------------

    def capture(self, adapter_id: uuid.UUID, *, lock: bool = False) -> TrafficCapture | None:
        stmt = self._captures().where(TrafficCapture.adapter_id == adapter_id)
        if lock:
            stmt = stmt.with_for_update()
        return self.session.execute(stmt).scalar_one_or_none()

    def add(self, row: TrafficCapture) -> None:
        self.session.add(row)

    def delete(self, row: TrafficCapture) -> None:
        self.session.delete(row)

    # --- traces -------------------------------------------------------------------------------

    def traces(self, q: TraceQuery) -> list[TraceRow]:
        """Newest first (created_at, then id), with adapter name, version number and feedback."""
        on_feedback = and_(
            Feedback.tenant_id == TrafficSample.tenant_id,
            Feedback.request_id == TrafficSample.request_id,
        )
        stmt = (
            self._samples()
            .add_columns(Adapter.name, AdapterVersion.version, Feedback)
            .join(Adapter, Adapter.id == TrafficSample.adapter_id)
            .outerjoin(AdapterVersion, AdapterVersion.id == TrafficSample.version_id)
            .outerjoin(Feedback, on_feedback)
        )
        if q.adapter_id is not None:
            stmt = stmt.where(TrafficSample.adapter_id == q.adapter_id)
        if q.since is not None:
            stmt = stmt.where(TrafficSample.created_at >= q.since)
        if q.until is not None:
            stmt = stmt.where(TrafficSample.created_at < q.until)
        if q.ratings is not None:
            stmt = stmt.where(Feedback.rating.in_(list(q.ratings)))
        if q.captured is not None:
            stmt = stmt.where(TrafficSample.captured == q.captured)
        if q.before is not None:
            at, row_id = q.before
            stmt = stmt.where(
                or_(
                    TrafficSample.created_at < at,
                    and_(TrafficSample.created_at == at, TrafficSample.id < row_id),
                )
            )
        stmt = stmt.order_by(TrafficSample.created_at.desc(), TrafficSample.id.desc())
        rows = self.session.execute(stmt.limit(q.limit)).all()
        return [TraceRow(s, name, version, fb) for s, name, version, fb in rows]

    # --- erasure ------------------------------------------------------------------------------

    def erase_samples(self, adapter_id: uuid.UUID | None) -> int:
        stmt = delete(TrafficSample).where(TrafficSample.tenant_id == self.tenant_id)
        if adapter_id is not None:
            stmt = stmt.where(TrafficSample.adapter_id == adapter_id)
        return _count(self.session.execute(stmt.execution_options(synchronize_session=False)))

    def erase_feedback(self, adapter_id: uuid.UUID | None) -> int:
        stmt = delete(Feedback).where(Feedback.tenant_id == self.tenant_id)
        if adapter_id is not None:
            stmt = stmt.where(Feedback.adapter_id == adapter_id)
        return _count(self.session.execute(stmt.execution_options(synchronize_session=False)))


class ExpiryRepository:
    """Platform-wide: which traffic is past its adapter's retention (the retention task only)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def retentions(self) -> list[tuple[uuid.UUID, int]]:
        """(adapter id, retention seconds) of every adapter with capture settings."""
        stmt = select(TrafficCapture.adapter_id, TrafficCapture.retention_seconds)
        return [(a, int(s)) for a, s in self.session.execute(stmt)]

    @staticmethod
    def _scope(column: object, adapter_id: uuid.UUID | None) -> object:
        """One adapter, or (None) every adapter without capture settings."""
        if adapter_id is not None:
            return column == adapter_id
        return ~exists().where(TrafficCapture.adapter_id == column)

    def expired_samples(
        self, cutoff: dt.datetime, adapter_id: uuid.UUID | None, limit: int
    ) -> list[tuple[int, str | None]]:
        """(id, object key) of up to `limit` samples created before `cutoff`."""
        stmt = (
            select(TrafficSample.id, TrafficSample.object_key)
            .where(
                TrafficSample.created_at < cutoff,
                self._scope(TrafficSample.adapter_id, adapter_id),  # type: ignore[arg-type]
            )
            .order_by(TrafficSample.id)
            .limit(limit)
        )
        return [(i, k) for i, k in self.session.execute(stmt)]

    def delete_samples(self, ids: Collection[int]) -> int:
        stmt = delete(TrafficSample).where(TrafficSample.id.in_(list(ids)))
        return _count(self.session.execute(stmt.execution_options(synchronize_session=False)))

    def referenced(self, keys: Collection[str]) -> set[str]:
        """Those of `keys` that some remaining sample still points at."""
        if not keys:
            return set()
        stmt = select(TrafficSample.object_key).where(TrafficSample.object_key.in_(list(keys)))
        return {k for (k,) in self.session.execute(stmt.distinct()) if k is not None}

    def delete_feedback(self, cutoff: dt.datetime, adapter_id: uuid.UUID | None) -> int:
        stmt = delete(Feedback).where(
            Feedback.created_at < cutoff,
            self._scope(Feedback.adapter_id, adapter_id),  # type: ignore[arg-type]
        )
        return _count(self.session.execute(stmt.execution_options(synchronize_session=False)))


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
