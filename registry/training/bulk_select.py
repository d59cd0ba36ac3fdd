"""The read side of `registry.training.bulk`: a batch's busy adapters, current versions and
datasets in one statement each, and the dataset choice of `selection.select_datasets` made on
rows already loaded (the same rule: the names given, else those the current version was trained
on, else every name of the tenant; `latest` keeps the newest version of each name)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.models import (
    Adapter,
    AdapterVersion,
    AdapterVersionDataset,
    Alias,
    Dataset,
    TrainingJob,
)
from registry.models.enums import DatasetMode, JobStatus, VersionStatus

UNFINISHED = (JobStatus.QUEUED, JobStatus.RUNNING)


class Skip(Exception):
    """This adapter's retrain is not started; the message says why."""


@dataclass(frozen=True)
class RetrainRequest:
    tenant_id: uuid.UUID
    adapter_id: uuid.UUID
    mode: DatasetMode
    names: list[str] | None
    trigger_ref: dict[str, Any]


def busy_jobs(
    session: Session, ids: list[uuid.UUID], tenant_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[uuid.UUID, str]]:
    stmt = select(TrainingJob.adapter_id, TrainingJob.id, TrainingJob.status).where(
        TrainingJob.adapter_id.in_(ids),
        TrainingJob.tenant_id.in_(tenant_ids),
        TrainingJob.status.in_(UNFINISHED),
    )
    return {
        adapter_id: (job_id, str(status)) for adapter_id, job_id, status in session.execute(stmt)
    }


def parents_of(
    session: Session, ids: list[uuid.UUID], tenant_ids: list[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    """`versions.default_parent` for each adapter: production's version, else the latest ready."""
    stmt = select(Alias.adapter_id, Alias.version_id).where(
        Alias.adapter_id.in_(ids), Alias.tenant_id.in_(tenant_ids), Alias.alias == "production"
    )
    out: dict[uuid.UUID, uuid.UUID] = {a: v for a, v in session.execute(stmt)}
    rest = [i for i in ids if i not in out]
    if rest:
        newest = (
            select(AdapterVersion.adapter_id, func.max(AdapterVersion.version).label("number"))
            .where(
                AdapterVersion.adapter_id.in_(rest),
                AdapterVersion.tenant_id.in_(tenant_ids),
                AdapterVersion.status == VersionStatus.READY,
            )
            .group_by(AdapterVersion.adapter_id)
            .subquery()
        )
        stmt = select(AdapterVersion.adapter_id, AdapterVersion.id).join(
            newest,
            (AdapterVersion.adapter_id == newest.c.adapter_id)
            & (AdapterVersion.version == newest.c.number),
        )
        out.update({a: v for a, v in session.execute(stmt)})
    return out


def trained_names(
    session: Session, parents: Mapping[uuid.UUID, uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    """The dataset names each parent version was trained on (its tenant's datasets only)."""
    if not parents:
        return {}
    stmt = (
        select(AdapterVersionDataset.version_id, Dataset.name)
        .join(Dataset, Dataset.id == AdapterVersionDataset.dataset_id)
        .join(AdapterVersion, AdapterVersion.id == AdapterVersionDataset.version_id)
        .where(
            AdapterVersionDataset.version_id.in_(set(parents.values())),
            AdapterVersionDataset.role == "train",
            Dataset.tenant_id == AdapterVersion.tenant_id,
        )
    )
    names: dict[uuid.UUID, set[str]] = defaultdict(set)
    for version_id, name in session.execute(stmt):
        names[version_id].add(name)
    return {v: sorted(n) for v, n in names.items()}


def tenant_datasets(
    session: Session, tenant_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[Dataset]]:
    stmt = (
        select(Dataset)
        .where(Dataset.tenant_id.in_(tenant_ids))
        .order_by(Dataset.tenant_id, Dataset.name, Dataset.version)
    )
    out: dict[uuid.UUID, list[Dataset]] = defaultdict(list)
    for d in session.execute(stmt).scalars():
        if d.tenant_id is not None:
            out[d.tenant_id].append(d)
    return out


def choose(
    adapter: Adapter, request: RetrainRequest, trained: list[str], rows: list[Dataset]
) -> list[Dataset]:
    """`selection.select_datasets` on rows already loaded (the tenant's, by name and version):
    the names given, else those the current version was trained on, else every name."""
    chosen = sorted(set(request.names)) if request.names else trained
    if not chosen:
        chosen = sorted({d.name for d in rows})
    if not chosen:
        raise Skip(f"tenant has no datasets to retrain adapter '{adapter.name}' on")
    wanted = set(chosen)
    picked = [d for d in rows if d.name in wanted]
    missing = sorted(wanted - {d.name for d in picked})
    if missing:
        raise Skip(f"no dataset named {', '.join(map(repr, missing))}")
    if request.mode == DatasetMode.ALL:
        return picked
    newest: dict[str, Dataset] = {}
    for d in picked:
        newest[d.name] = d  # ordered by version: the last one wins
    return list(newest.values())
