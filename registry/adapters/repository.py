from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from registry.models import Adapter, AdapterVersion, AdapterVersionDataset, Alias, Dataset


class AdapterRepository:
    """Every query is scoped to one tenant through `_base`."""

    def __init__(self, session: Session, tenant_id: uuid.UUID) -> None:
        self.session, self.tenant_id = session, tenant_id

    def _base(self) -> Select[Adapter]:
        return select(Adapter).where(Adapter.tenant_id == self.tenant_id)

    def get_by_name(self, name: str, *, lock: bool = False) -> Adapter | None:
        stmt = self._base().where(Adapter.name == name)
        if lock:
            stmt = stmt.with_for_update()
        return self.session.execute(stmt).scalar_one_or_none()

    def lock(self, adapter: Adapter) -> Adapter:
        """Re-read under a row lock: serializes version numbers for this adapter."""
        stmt = self._base().where(Adapter.id == adapter.id).with_for_update()
        locked = self.session.execute(stmt.execution_options(populate_existing=True))
        return locked.scalar_one()

    def list(self, *, include_archived: bool) -> Sequence[Adapter]:
        stmt = self._base()
        if not include_archived:
            stmt = stmt.where(Adapter.archived_at.is_(None))
        return self.session.execute(stmt.order_by(Adapter.name)).scalars().all()

    def count_active(self) -> int:
        stmt = (
            select(func.count())
            .select_from(Adapter)
            .where(Adapter.tenant_id == self.tenant_id, Adapter.archived_at.is_(None))
        )
        return int(self.session.execute(stmt).scalar_one())

    def add(self, adapter: Adapter) -> None:
        self.session.add(adapter)


class VersionRepository:
    def __init__(self, session: Session, tenant_id: uuid.UUID) -> None:
        self.session, self.tenant_id = session, tenant_id

    def _base(self) -> Select[AdapterVersion]:
        return select(AdapterVersion).where(AdapterVersion.tenant_id == self.tenant_id)

    def get(self, adapter_id: uuid.UUID, version: int) -> AdapterVersion | None:
        stmt = self._base().where(
            AdapterVersion.adapter_id == adapter_id, AdapterVersion.version == version
        )
        return self.session.execute(stmt).scalar_one_or_none()

    def get_by_id(self, version_id: uuid.UUID) -> AdapterVersion | None:
        stmt = self._base().where(AdapterVersion.id == version_id)
        return self.session.execute(stmt).scalar_one_or_none()

    def get_by_alias(self, adapter_id: uuid.UUID, alias: str) -> AdapterVersion | None:
        """The version `alias` points at, in one statement."""
        stmt = (
            self._base()
            .join(Alias, Alias.version_id == AdapterVersion.id)
            .where(
                Alias.tenant_id == self.tenant_id,
                Alias.adapter_id == adapter_id,
                Alias.alias == alias,
            )
        )
        return self.session.execute(stmt).scalar_one_or_none()

    def list(self, adapter_id: uuid.UUID) -> Sequence[AdapterVersion]:
        stmt = self._base().where(AdapterVersion.adapter_id == adapter_id)
        return self.session.execute(stmt.order_by(AdapterVersion.version)).scalars().all()

    def latest_numbers(self, adapter_ids: builtins.list[uuid.UUID]) -> dict[uuid.UUID, int]:
        stmt = (
            select(AdapterVersion.adapter_id, func.max(AdapterVersion.version))
            .where(
                AdapterVersion.tenant_id == self.tenant_id,
                AdapterVersion.adapter_id.in_(adapter_ids),
            )
            .group_by(AdapterVersion.adapter_id)
        )
        return {row[0]: row[1] for row in self.session.execute(stmt)}

    def latest_ready(self, adapter_id: uuid.UUID) -> AdapterVersion | None:
        stmt = (
            self._base()
            .where(AdapterVersion.adapter_id == adapter_id, AdapterVersion.status == "ready")
            .order_by(AdapterVersion.version.desc())
            .limit(1)
        )
        return self.session.execute(stmt).scalar_one_or_none()

    def datasets(
        self, version_ids: builtins.list[uuid.UUID]
    ) -> dict[uuid.UUID, builtins.list[tuple[Dataset, str]]]:
        stmt = (
            select(AdapterVersionDataset.version_id, Dataset, AdapterVersionDataset.role)
            .join(Dataset, Dataset.id == AdapterVersionDataset.dataset_id)
            .where(
                AdapterVersionDataset.version_id.in_(version_ids),
                or_(
                    Dataset.tenant_id == self.tenant_id,
                    # ops' rehearsal data: the tenant sees which, never its rows
                    (Dataset.tenant_id.is_(None)) & (AdapterVersionDataset.role == "rehearsal"),
                ),
            )
            .order_by(Dataset.name, Dataset.version)
        )
        out: dict[uuid.UUID, builtins.list[tuple[Dataset, str]]] = {v: [] for v in version_ids}
        for version_id, dataset, role in self.session.execute(stmt):
            out[version_id].append((dataset, role))
        return out

    def numbers(self, ids: builtins.list[uuid.UUID]) -> dict[uuid.UUID, int]:
        if not ids:
            return {}
        stmt = select(AdapterVersion.id, AdapterVersion.version).where(
            AdapterVersion.tenant_id == self.tenant_id, AdapterVersion.id.in_(ids)
        )
        return {row[0]: row[1] for row in self.session.execute(stmt)}

    def add(self, version: AdapterVersion) -> None:
        self.session.add(version)

    def link_dataset(self, version_id: uuid.UUID, dataset_id: uuid.UUID, role: str) -> None:
        self.session.add(
            AdapterVersionDataset(version_id=version_id, dataset_id=dataset_id, role=role)
        )
