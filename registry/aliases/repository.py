from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, select
from sqlalchemy.orm import Session

from registry.models import Adapter, AdapterVersion, Alias, AliasEvent, Tenant


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


def alias_rows(
    session: Session, visible_tenant: ColumnElement[bool], adapter: str
) -> list[Row[Any]]:
    """One statement for `GET .../adapters/{name}/aliases`: the tenant row `visible_tenant` picks
    (`tenant_id`), its adapter `adapter` (`adapter_id`, null if none), that adapter's aliases with
    their version numbers (`alias`, `version`, `updated_by`, `updated_at`; null if none), every
    join tenant-filtered. No rows: no visible tenant. Core, not ORM: a hot read."""
    stmt = (
        select(
            Tenant.id.label("tenant_id"),
            Adapter.id.label("adapter_id"),
            Alias.alias,
            AdapterVersion.version,
            Alias.updated_by,
            Alias.updated_at,
        )
        .select_from(Tenant)
        .outerjoin(Adapter, (Adapter.tenant_id == Tenant.id) & (Adapter.name == adapter))
        .outerjoin(Alias, (Alias.tenant_id == Tenant.id) & (Alias.adapter_id == Adapter.id))
        .outerjoin(
            AdapterVersion,
            (AdapterVersion.tenant_id == Tenant.id) & (AdapterVersion.id == Alias.version_id),
        )
        .where(visible_tenant)
        .order_by(Alias.alias)
    )
    rows: list[Row[Any]] = [*session.connection().execute(stmt)]
    return rows
