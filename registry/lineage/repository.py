"""Lineage reads: one recursive query for a version's parent chain, then one query per kind of
related row for the whole chain. The count does not grow with the chain or the tenant."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, literal, or_, select
from sqlalchemy.orm import Session, load_only

from registry.models import (
    Adapter,
    AdapterVersion,
    AdapterVersionDataset,
    AliasEvent,
    BaseModel,
    Dataset,
    Eval,
    TrafficSplitEvent,
    UsageRecord,
)

# Parent links only point back in time, so a chain has no cycle; this bounds a corrupt one.
MAX_DEPTH = 10_000
SPLIT_EVENTS_MAX = 1000  # split changes per lineage request (the newest)
# Only what a lineage node shows: manifests and training configs stay in the database.
# raiseload: touching any other column raises instead of quietly costing a query per row.
VERSION_COLUMNS = load_only(
    AdapterVersion.adapter_id,
    AdapterVersion.version,
    AdapterVersion.status,
    AdapterVersion.parent_id,
    AdapterVersion.base_model_id,
    AdapterVersion.base_model_digest,
    AdapterVersion.config_hash,
    AdapterVersion.trigger,
    AdapterVersion.trigger_ref,
    AdapterVersion.job_id,
    AdapterVersion.manifest_digest,
    AdapterVersion.created_by,
    AdapterVersion.created_at,
    AdapterVersion.ready_at,
    raiseload=True,
)
DATASET_COLUMNS = load_only(
    Dataset.name,
    Dataset.version,
    Dataset.sha256,
    Dataset.rows,
    Dataset.tenant_id,
    Dataset.origin,
    raiseload=True,
)


class LineageRepository:
    """Every statement filters on this tenant: through `_scoped`, or (datasets) on the dataset
    being the tenant's own or ops' rehearsal data mixed into one of its versions."""

    def __init__(self, session: Session, tenant_id: uuid.UUID) -> None:
        self.session, self.tenant_id = session, tenant_id

    def _scoped(self, model: Any, *columns: Any) -> Select[Any]:
        """`select(columns or model)` of a tenant-owned table, filtered on this tenant."""
        return select(*(columns or (model,))).where(model.tenant_id == self.tenant_id)

    def chain(self, adapter_id: uuid.UUID, number: int) -> list[tuple[AdapterVersion, str]]:
        """The version, then its parent, grandparent... back to the first: (version, adapter
        name) pairs, nearest first. Empty if the version does not exist for this tenant."""
        anchor = self._scoped(
            AdapterVersion, AdapterVersion.id, AdapterVersion.parent_id, literal(0).label("depth")
        ).where(AdapterVersion.adapter_id == adapter_id, AdapterVersion.version == number)
        walk = anchor.cte("lineage_chain", recursive=True)
        step = (
            self._scoped(
                AdapterVersion, AdapterVersion.id, AdapterVersion.parent_id, walk.c.depth + 1
            )
            .join(walk, AdapterVersion.id == walk.c.parent_id)
            .where(walk.c.depth < MAX_DEPTH)
        )
        walk = walk.union_all(step)
        stmt = (
            self._scoped(AdapterVersion, AdapterVersion, Adapter.name)
            .join(walk, AdapterVersion.id == walk.c.id)
            .join(Adapter, Adapter.id == AdapterVersion.adapter_id)
            .where(Adapter.tenant_id == self.tenant_id)
            .order_by(walk.c.depth)
            .options(VERSION_COLUMNS)
        )
        return [(row[0], row[1]) for row in self.session.execute(stmt)]

    def datasets(self, version_ids: Sequence[uuid.UUID]) -> list[tuple[uuid.UUID, Dataset, str]]:
        """(version id, dataset, role) for every dataset the versions were trained on: the
        tenant's own, and ops' platform rehearsal data mixed into them (its name, version,
        digest and size only; the versions are this tenant's, from `chain`)."""
        own = Dataset.tenant_id == self.tenant_id
        rehearsal = Dataset.tenant_id.is_(None) & (AdapterVersionDataset.role == "rehearsal")
        stmt = (
            select(AdapterVersionDataset.version_id, Dataset, AdapterVersionDataset.role)
            .select_from(Dataset)
            .join(AdapterVersionDataset, AdapterVersionDataset.dataset_id == Dataset.id)
            .where(AdapterVersionDataset.version_id.in_(version_ids), or_(own, rehearsal))
            .order_by(Dataset.name, Dataset.version, AdapterVersionDataset.role)
            .options(DATASET_COLUMNS)
        )
        return [(row[0], row[1], row[2]) for row in self.session.execute(stmt)]

    def evals(self, version_ids: Sequence[uuid.UUID]) -> Sequence[Eval]:
        stmt = self._scoped(Eval).where(Eval.version_id.in_(version_ids))
        return self.session.execute(stmt.order_by(Eval.created_at, Eval.id)).scalars().all()

    def alias_events(self, versions: Sequence[AdapterVersion]) -> Sequence[AliasEvent]:
        """Every alias move to or from one of `versions` (events name versions by number)."""
        keys = {(v.adapter_id, v.version) for v in versions}
        numbers = sorted({n for _, n in keys})
        stmt = self._scoped(AliasEvent).where(
            AliasEvent.adapter_id.in_(sorted({a for a, _ in keys})),
            or_(AliasEvent.to_version.in_(numbers), AliasEvent.from_version.in_(numbers)),
        )
        rows = self.session.execute(stmt.order_by(AliasEvent.id)).scalars().all()
        return [
            e
            for e in rows
            if (e.adapter_id, e.to_version) in keys or (e.adapter_id, e.from_version) in keys
        ]

    def split_events(self, versions: Sequence[AdapterVersion]) -> Sequence[TrafficSplitEvent]:
        """Every traffic split change that gave or took traffic from one of `versions` (the
        newest SPLIT_EVENTS_MAX of the chain's adapters, filtered here: arms are JSON)."""
        keys = {(v.adapter_id, v.version) for v in versions}
        stmt = self._scoped(TrafficSplitEvent).where(
            TrafficSplitEvent.adapter_id.in_(sorted({a for a, _ in keys}))
        )
        stmt = stmt.order_by(TrafficSplitEvent.id.desc()).limit(SPLIT_EVENTS_MAX)
        rows = list(reversed(self.session.execute(stmt).scalars().all()))
        return [
            e
            for e in rows
            if any((e.adapter_id, a.get("version")) in keys for a in [*e.arms, *e.previous])
        ]

    def base_models(self, version_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, BaseModel]:
        """The base models of `version_ids`. Base models are platform-wide rows; they are
        reached only through this tenant's versions."""
        used = self._scoped(AdapterVersion, AdapterVersion.base_model_id).where(
            AdapterVersion.id.in_(version_ids)
        )
        stmt = select(BaseModel).where(BaseModel.id.in_(used))
        return {m.id: m for m in self.session.execute(stmt).scalars()}

    def served(self, ids: Sequence[uuid.UUID]) -> Sequence[Any]:
        """Per version: requests answered, distinct clients, first and last request, tokens,
        tool calls."""
        stmt = (
            self._scoped(
                UsageRecord,
                UsageRecord.version_id,
                func.count(),
                func.count(func.distinct(UsageRecord.client_id)),
                func.min(UsageRecord.started_at),
                func.max(UsageRecord.started_at),
                func.coalesce(
                    func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens), 0
                ),
                func.coalesce(func.sum(UsageRecord.tool_calls), 0),
            )
            .where(UsageRecord.version_id.in_(list(ids)), UsageRecord.status_code == 200)
            .group_by(UsageRecord.version_id)
        )
        return self.session.execute(stmt).all()
