from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from registry.models import AuditChainHead, AuditEvent


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_head(self) -> AuditChainHead:
        stmt = select(AuditChainHead).where(AuditChainHead.id == 1).with_for_update()
        return self.session.execute(stmt).scalar_one()

    def head(self) -> AuditChainHead:
        return self.session.execute(select(AuditChainHead)).scalar_one()

    def get(self, seq: int) -> AuditEvent | None:
        return self.session.get(AuditEvent, seq)

    def add(self, event: AuditEvent) -> None:
        self.session.add(event)

    def list(
        self,
        *,
        tenant_id: uuid.UUID | None,
        action: str | None,
        since: dt.datetime | None,
        until: dt.datetime | None,
        after_seq: int,
        limit: int,
    ) -> Sequence[AuditEvent]:
        stmt: Select[AuditEvent] = select(AuditEvent).where(AuditEvent.seq > after_seq)
        if tenant_id is not None:
            stmt = stmt.where(AuditEvent.tenant_id == tenant_id)
        if action is not None:
            stmt = stmt.where(AuditEvent.action == action)
        if since is not None:
            stmt = stmt.where(AuditEvent.occurred_at >= since)
        if until is not None:
            stmt = stmt.where(AuditEvent.occurred_at < until)
        return self.session.execute(stmt.order_by(AuditEvent.seq).limit(limit)).scalars().all()

    def iter_all(self, batch: int = 1000) -> Iterator[AuditEvent]:
        last = 0
        while True:
            stmt = select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq)
            rows = self.session.execute(stmt.limit(batch)).scalars().all()
            if not rows:
                return
            yield from rows
            last = rows[-1].seq
            self.session.expunge_all()
