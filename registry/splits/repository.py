from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from registry.models import TrafficSplit, TrafficSplitEvent, UsageRecord

LATENCY_SAMPLE = 5000  # newest successful requests per version the p95 is taken over


@dataclass(frozen=True)
class VersionFigures:
    requests: int
    errors: int
    latencies_ms: list[float]  # successful requests only, newest first

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p95_ms(self) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        rank = max(0, -(-95 * len(ordered) // 100) - 1)  # nearest rank
        return ordered[rank]


class SplitRepository:
    """Every query is scoped to one tenant."""

    def __init__(self, session: Session, tenant_id: uuid.UUID) -> None:
        self.session, self.tenant_id = session, tenant_id

    def _splits(self) -> Select[TrafficSplit]:
        return select(TrafficSplit).where(TrafficSplit.tenant_id == self.tenant_id)

    def _events(self) -> Select[TrafficSplitEvent]:
        return select(TrafficSplitEvent).where(TrafficSplitEvent.tenant_id == self.tenant_id)

    def get(self, adapter_id: uuid.UUID, *, lock: bool = False) -> TrafficSplit | None:
        stmt = self._splits().where(TrafficSplit.adapter_id == adapter_id)
        if lock:
            stmt = stmt.with_for_update()
        return self.session.execute(stmt).scalar_one_or_none()

    def history(self, adapter_id: uuid.UUID, limit: int = 1000) -> Sequence[TrafficSplitEvent]:
        stmt = self._events().where(TrafficSplitEvent.adapter_id == adapter_id)
        stmt = stmt.order_by(TrafficSplitEvent.id.desc()).limit(limit)
        return list(reversed(self.session.execute(stmt).scalars().all()))

    def last_automatic(self, adapter_id: uuid.UUID) -> TrafficSplitEvent | None:
        stmt = self._events().where(
            TrafficSplitEvent.adapter_id == adapter_id, TrafficSplitEvent.automatic.is_(True)
        )
        stmt = stmt.order_by(TrafficSplitEvent.id.desc()).limit(1)
        return self.session.execute(stmt).scalar_one_or_none()

    def events_for_adapters(
        self, adapter_ids: Sequence[uuid.UUID], limit: int = 500
    ) -> Sequence[TrafficSplitEvent]:
        stmt = self._events().where(TrafficSplitEvent.adapter_id.in_(adapter_ids))
        stmt = stmt.order_by(TrafficSplitEvent.id.desc()).limit(limit)
        return list(reversed(self.session.execute(stmt).scalars().all()))

    def add(self, obj: TrafficSplit | TrafficSplitEvent) -> None:
        self.session.add(obj)

    def delete(self, split: TrafficSplit) -> None:
        self.session.delete(split)

    def figures(
        self, adapter_id: uuid.UUID, version_ids: Sequence[uuid.UUID], since: dt.datetime
    ) -> dict[uuid.UUID, VersionFigures]:
        """Requests, errors (status not 200) and the latencies of successful requests, per
        version, from the gateway's usage records since `since`."""
        scope = (
            UsageRecord.tenant_id == self.tenant_id,
            UsageRecord.adapter_id == adapter_id,
            UsageRecord.started_at >= since,
        )
        counts = self.session.execute(
            select(
                UsageRecord.version_id,
                func.count(),
                func.sum(case((UsageRecord.status_code != 200, 1), else_=0)),
            )
            .where(*scope, UsageRecord.version_id.in_(version_ids))
            .group_by(UsageRecord.version_id)
        ).all()
        found = {vid: (int(n), int(errors or 0)) for vid, n, errors in counts}
        out = {}
        for vid in version_ids:
            requests, errors = found.get(vid, (0, 0))
            latencies: list[float] = []
            if requests > errors:
                latencies = list(
                    self.session.execute(
                        select(UsageRecord.latency_ms)
                        .where(*scope, UsageRecord.version_id == vid)
                        .where(UsageRecord.status_code == 200)
                        .order_by(UsageRecord.started_at.desc())
                        .limit(LATENCY_SAMPLE)
                    ).scalars()
                )
            out[vid] = VersionFigures(requests, errors, latencies)
        return out


def active_splits(session: Session) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(tenant id, adapter id) of every split on the platform (the periodic rollback check)."""
    rows = session.execute(
        select(TrafficSplit.tenant_id, TrafficSplit.adapter_id).order_by(TrafficSplit.started_at)
    ).all()
    return [(t, a) for t, a in rows]
