from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from registry.models import Alias, AliasEvent


class AliasRepository:
    """Every query is scoped to one tenant."""

    def __init__(self, session: Session, tenant_id: uuid.UUID) -> None:
        self.session, self.tenant_id = session, tenant_id

    def _aliases(self) -> Select[Alias]:
        return select(Alias).where(Alias.tenant_id == self.tenant_id)

    def _events(self) -> Select[AliasEvent]:
        return select(AliasEvent).where(AliasEvent.tenant_id == self.tenant_id)

    def get(self, adapter_id: uuid.UUID, alias: str, *, lock: bool = False) -> Alias | None:
        stmt = self._aliases().where(Alias.adapter_id == adapter_id, Alias.alias == alias)
        if lock:
            stmt = stmt.with_for_update()
        return self.session.execute(stmt).scalar_one_or_none()

    def list(self, adapter_id: uuid.UUID) -> Sequence[Alias]:
        stmt = self._aliases().where(Alias.adapter_id == adapter_id).order_by(Alias.alias)
        return self.session.execute(stmt).scalars().all()

    def history(self, adapter_id: uuid.UUID, alias: str) -> Sequence[AliasEvent]:
        stmt = self._events().where(AliasEvent.adapter_id == adapter_id, AliasEvent.alias == alias)
        return self.session.execute(stmt.order_by(AliasEvent.id)).scalars().all()

    def at(self, adapter_id: uuid.UUID, alias: str, when: dt.datetime) -> AliasEvent | None:
        """The last move of `alias` at or before `when`."""
        stmt = (
            self._events()
            .where(
                AliasEvent.adapter_id == adapter_id,
                AliasEvent.alias == alias,
                AliasEvent.occurred_at <= when,
            )
            .order_by(AliasEvent.occurred_at.desc(), AliasEvent.id.desc())
            .limit(1)
        )
        return self.session.execute(stmt).scalar_one_or_none()

    def events_for_version(self, adapter_id: uuid.UUID, number: int) -> Sequence[AliasEvent]:
        stmt = self._events().where(
            AliasEvent.adapter_id == adapter_id,
            (AliasEvent.to_version == number) | (AliasEvent.from_version == number),
        )
        return self.session.execute(stmt.order_by(AliasEvent.id)).scalars().all()

    def add(self, obj: Alias | AliasEvent) -> None:
        self.session.add(obj)

    def delete(self, alias: Alias) -> None:
        self.session.delete(alias)
