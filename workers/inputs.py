"""Everything a training job reads, loaded once from the registry and the object store."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session

from registry.adapters.repository import VersionRepository
from registry.aliases.repository import AliasRepository
from registry.base_models.local_copy import DigestMismatch
from registry.base_models.repository import BaseModelRepository
from registry.datasets.repository import DatasetRepository
from registry.errors import require
from registry.models import Adapter, AdapterVersion, BaseModel, Dataset, Tenant, TrainingJob
from registry.storage import ObjectStore
from registry.training.lifecycle import artifact_prefix, lifecycle
from workers.suites import SuiteSpec, load_suites


class JobInputError(Exception):
    """The job cannot succeed as asked (bad data, nothing to train on): no retry."""


@dataclass
class JobInputs:
    job: TrainingJob
    tenant: Tenant
    adapter: Adapter
    version: AdapterVersion
    base: BaseModel
    train_sets: list[Dataset]
    validation: Dataset | None
    production: AdapterVersion | None
    prefix: str
    suites: list[SuiteSpec] = field(default_factory=list)
    rehearsal: Dataset | None = None  # ops' platform rows mixed into training
    rehearsal_ratio: float = 0.0

    @property
    def config(self) -> dict[str, Any]:
        return self.job.config


def load_inputs(session: Session, job: TrainingJob) -> JobInputs:
    tenant = require(session.get(Tenant, job.tenant_id), f"tenant {job.tenant_id}")
    adapter = lifecycle.adapter(session, job)
    base = require(BaseModelRepository(session).get(adapter.base_model_id), "base model")
    datasets = DatasetRepository(session, job.tenant_id)
    train_sets = []
    for raw in job.dataset_ids:
        found = datasets.get(uuid.UUID(raw))
        if found is None:
            raise JobInputError(f"dataset {raw} no longer exists")
        train_sets.append(found)
    validation = datasets.get(job.validation_dataset_id) if job.validation_dataset_id else None
    production = None
    alias = AliasRepository(session, job.tenant_id).get(adapter.id, "production")
    if alias is not None:
        production = VersionRepository(session, job.tenant_id).get_by_id(alias.version_id)
    rehearsal = None
    if base.rehearsal_dataset_id is not None and base.rehearsal_ratio > 0:
        rehearsal = session.get(Dataset, base.rehearsal_dataset_id)
        if rehearsal is None or rehearsal.tenant_id is not None:
            raise JobInputError(f"base model {base.name}'s rehearsal dataset is gone")
    return JobInputs(
        job=job,
        tenant=tenant,
        adapter=adapter,
        version=lifecycle.version(session, job),
        base=base,
        train_sets=train_sets,
        validation=validation,
        production=production,
        prefix=artifact_prefix(job),
        suites=load_suites(session, adapter, base, production),
        rehearsal=rehearsal,
        rehearsal_ratio=base.rehearsal_ratio if rehearsal is not None else 0.0,
    )


class StoredRows(Protocol):
    """A dataset or an eval suite: immutable JSONL rows under a registered digest."""

    name: str
    version: int
    sha256: str
    object_key: str


def read_rows(store: ObjectStore, dataset: StoredRows) -> list[dict[str, Any]]:
    """The dataset's rows, after checking the stored bytes against the registered digest.

    Streamed: only one chunk and the parsed rows are held, never the file's bytes as well.
    """
    return list(iter_rows(store, dataset))


def iter_rows(store: ObjectStore, dataset: StoredRows) -> Iterator[dict[str, Any]]:
    """Parsed rows as the file streams in; raises `DigestMismatch` at the end if it differs,
    so a caller must consume every row before using any."""
    digest = hashlib.sha256()
    tail = b""
    for chunk in store.iter_chunks(dataset.object_key):
        digest.update(chunk)
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        for line in lines:
            if line.strip():
                yield json.loads(line)
    if tail.strip():
        yield json.loads(tail)
    got = digest.hexdigest()
    if got != dataset.sha256:
        raise DigestMismatch(
            f"dataset {dataset.name} v{dataset.version}: stored sha256 {got}, "
            f"registered {dataset.sha256}"
        )


def rows_digest(rows: list[dict[str, Any]]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    return digest.hexdigest()
