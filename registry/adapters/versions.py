"""Adapter versions: numbered under the adapter's row lock, immutable once ready."""

from __future__ import annotations

import builtins
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version as package_version
from typing import Any

from sqlalchemy.orm import Session

from registry.adapters.repository import AdapterRepository, VersionRepository
from registry.adapters.schemas import VersionDatasetOut, VersionOut
from registry.aliases.repository import AliasRepository
from registry.base_models.repository import BaseModelRepository
from registry.errors import NotFound, require
from registry.models import Adapter, AdapterVersion, Dataset, Tenant
from registry.notify import announce

CODE_VERSION = package_version("loraplex")


def artifact_prefix(tenant_id: uuid.UUID, adapter_id: uuid.UUID, version_id: uuid.UUID) -> str:
    """Where a version's files live in the object store (one prefix per version, never reused)."""
    return f"tenants/{tenant_id}/adapters/{adapter_id}/versions/{version_id}"


def config_hash(config: dict[str, Any]) -> str:
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class NewVersion:
    """What a new version is made of; the number is allocated by `VersionService.allocate`."""

    status: str
    trigger: str
    created_by: str
    training_config: dict[str, Any]
    trigger_ref: dict[str, Any] = field(default_factory=dict)
    job_id: str | None = None
    parent: AdapterVersion | None = None
    datasets: builtins.list[tuple[Dataset, str]] = field(default_factory=list)  # (dataset, role)
    version_id: uuid.UUID = field(default_factory=uuid.uuid4)


class VersionService:
    def allocate(self, session: Session, *, adapter: Adapter, new: NewVersion) -> AdapterVersion:
        """Take the next number under the adapter's row lock; rolled back with the transaction,
        so numbers have no gaps and no duplicates however many are created at once."""
        locked = AdapterRepository(session, adapter.tenant_id).lock(adapter)
        number = locked.next_version
        locked.next_version = number + 1
        base = require(BaseModelRepository(session).get(adapter.base_model_id), "base model")
        version = AdapterVersion(
            id=new.version_id,
            tenant_id=adapter.tenant_id,
            adapter_id=adapter.id,
            version=number,
            status=new.status,
            parent_id=new.parent.id if new.parent else None,
            base_model_id=base.id,
            base_model_digest=base.digest,
            training_config=new.training_config,
            config_hash=config_hash(new.training_config),
            trigger=new.trigger,
            trigger_ref=new.trigger_ref,
            job_id=new.job_id,
            code_version=CODE_VERSION,
            created_by=new.created_by,
        )
        repo = VersionRepository(session, adapter.tenant_id)
        repo.add(version)
        session.flush()
        for dataset, role in new.datasets:
            if dataset.tenant_id != adapter.tenant_id:
                raise NotFound(f"dataset '{dataset.id}' not found")
            repo.link_dataset(version.id, dataset.id, role)
        session.flush()
        announce(session, adapter.tenant_id, adapter.id)  # `name@vN` exists from the commit on
        return version

    def default_parent(self, session: Session, *, adapter: Adapter) -> AdapterVersion | None:
        """The version a new one descends from: production if set, else the latest ready."""
        repo = VersionRepository(session, adapter.tenant_id)
        alias = AliasRepository(session, adapter.tenant_id).get(adapter.id, "production")
        if alias is not None:
            return repo.get_by_id(alias.version_id)
        return repo.latest_ready(adapter.id)

    def get(self, session: Session, *, adapter: Adapter, number: int) -> AdapterVersion:
        found = VersionRepository(session, adapter.tenant_id).get(adapter.id, number)
        if found is None:
            raise NotFound(f"version {number} of adapter '{adapter.name}' not found")
        return found

    def list(self, session: Session, *, adapter: Adapter) -> Sequence[AdapterVersion]:
        return VersionRepository(session, adapter.tenant_id).list(adapter.id)

    def to_out(
        self, session: Session, *, tenant: Tenant, adapter: Adapter, rows: Sequence[AdapterVersion]
    ) -> builtins.list[VersionOut]:
        repo = VersionRepository(session, tenant.id)
        ids = [v.id for v in rows]
        datasets = repo.datasets(ids)
        parents = repo.numbers([v.parent_id for v in rows if v.parent_id])
        base = BaseModelRepository(session).get(adapter.base_model_id)
        return [
            VersionOut(
                id=v.id,
                adapter=adapter.name,
                version=v.version,
                status=v.status,  # type: ignore[arg-type]
                status_message=v.status_message,
                parent_version=parents.get(v.parent_id) if v.parent_id else None,
                datasets=[
                    VersionDatasetOut(
                        id=d.id, name=d.name, version=d.version, sha256=d.sha256, role=role
                    )
                    for d, role in datasets[v.id]
                ],
                base_model=base.name if base else "?",
                base_model_digest=v.base_model_digest,
                training_config=v.training_config,
                config_hash=v.config_hash,
                trigger=v.trigger,  # type: ignore[arg-type]
                trigger_ref=v.trigger_ref,
                job_id=v.job_id,
                artifact_prefix=v.artifact_prefix,
                manifest=v.manifest,
                manifest_digest=v.manifest_digest,
                size_bytes=v.size_bytes,
                code_version=v.code_version,
                created_by=v.created_by,
                created_at=v.created_at,
                ready_at=v.ready_at,
                gate=v.gate,
            )
            for v in rows
        ]


versions = VersionService()
