"""Dataset versions: streamed, validated uploads that become immutable rows, de-duplicated by
their content's sha256 (a second upload of stored content shares the first one's object).

An owner is a tenant, or with `tenant=None` the platform: ops' datasets (rehearsal data mixed
into tenants' training), stored under `platform/` and never listed or read through tenant routes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy.orm import Session

from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.datasets.ingest import DatasetIngest, IngestLimits, JsonlIngest, upload_key
from registry.datasets.repository import DatasetRepository
from registry.datasets.validation import DatasetValidator
from registry.errors import NotFound
from registry.models import Dataset, Tenant
from registry.owned import Registered, upload
from registry.settings import Settings
from registry.storage import ObjectStore, StoredObject


def platform_dataset_key() -> str:
    return upload_key("platform/datasets")


def _what(tenant: Tenant | None) -> str:
    return "dataset" if tenant is not None else "platform dataset"


class DatasetService:
    async def upload(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant | None,
        content_type: str | None,
        body: AsyncIterator[bytes],
        store: ObjectStore,
        settings: Settings,
    ) -> Registered[Dataset]:
        """Store one dataset version for `tenant`, or for the platform with `tenant=None`."""
        ingest = open_ingest(store, tenant, settings)

        return await upload(
            session,
            repo=DatasetRepository(session, tenant.id if tenant else None),
            tenant=tenant,
            ingest=ingest,
            noun="dataset",
            content_type=content_type,
            body=body,
            max_upload_bytes=settings.max_upload_bytes,
            insert=lambda name, stored, version: self.insert(
                session,
                actor=actor,
                tenant=tenant,
                name=name,
                ingest=ingest,
                stored=stored,
                version=version,
            ),
        )

    def insert(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant | None,
        name: str,
        ingest: JsonlIngest,
        stored: StoredObject,
        version: int,
        origin: dict[str, Any] | None = None,
    ) -> Dataset:
        """The row of a registered version and its audit event; `origin` for derived data
        (registry/datasets/derived.py), None for an upload."""
        report = ingest.report
        tenant_id = tenant.id if tenant else None
        dataset = Dataset(
            tenant_id=tenant_id,
            name=name,
            version=version,
            format=report.format or "",
            sha256=stored.sha256,
            bytes=stored.size,
            rows=report.rows,
            tool_rows=report.tool_rows,
            duplicates_dropped=report.duplicates,
            source_sha256=ingest.source_hash.hexdigest(),
            source_bytes=ingest.source_bytes,
            object_key=stored.key,
            origin=origin,
            created_by=actor.subject,
        )
        DatasetRepository(session, tenant_id).add(dataset)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="dataset.create",
            target_type="dataset",
            target_id=str(dataset.id),
            tenant_id=tenant_id,
            details={
                "name": name,
                "version": dataset.version,
                "sha256": dataset.sha256,
                "rows": dataset.rows,
                "tool_rows": dataset.tool_rows,
                "duplicates_dropped": dataset.duplicates_dropped,
                "filename": ingest.filename,
                **({"origin": origin["kind"]} if origin else {}),
            },
        )
        return dataset

    def list(
        self,
        session: Session,
        *,
        tenant: Tenant | None,
        name: str | None,
        limit: int,
        offset: int,
    ) -> Sequence[Dataset]:
        repo = DatasetRepository(session, tenant.id if tenant else None)
        return repo.list(name=name, limit=limit, offset=offset)

    def get(self, session: Session, *, tenant: Tenant | None, dataset_id: uuid.UUID) -> Dataset:
        dataset = DatasetRepository(session, tenant.id if tenant else None).get(dataset_id)
        if dataset is None:
            raise NotFound(f"{_what(tenant)} '{dataset_id}' not found")
        return dataset

    def find(
        self, session: Session, *, tenant: Tenant | None, name: str, version: int | None
    ) -> Dataset:
        """`name` at `version` (None: its latest version) of this owner, or 404 naming both."""
        dataset = DatasetRepository(session, tenant.id if tenant else None).get_version(
            name, version
        )
        if dataset is None:
            which = f"version {version} of " if version is not None else ""
            raise NotFound(f"{which}{_what(tenant)} '{name}' not found")
        return dataset


def open_ingest(store: ObjectStore, tenant: Tenant | None, settings: Settings) -> JsonlIngest:
    """The upload sink for this owner (None: the platform). While streaming it refuses only
    what could never fit (content may dedupe against what the tenant already stores); the exact
    quota check runs at registration, under the owner's lock. The platform has no quota: one
    upload is bounded by LORAPLEX_MAX_UPLOAD_BYTES."""
    if tenant is not None:
        return DatasetIngest(
            store,
            tenant_id=tenant.id,
            max_line_bytes=settings.max_line_bytes,
            max_stored_bytes=tenant.quota_dataset_bytes,
            max_rows=settings.dataset_max_rows,
            max_tools=settings.dataset_max_tools,
            schema_steps=settings.dataset_schema_steps,
        )
    validator = DatasetValidator(
        max_line_bytes=settings.max_line_bytes,
        max_tools=settings.dataset_max_tools,
        schema_steps=settings.dataset_schema_steps,
    )
    limits = IngestLimits(
        max_stored_bytes=settings.max_upload_bytes,
        max_rows=settings.dataset_max_rows,
        stored_limit="this platform dataset is larger than the upload limit "
        "(LORAPLEX_MAX_UPLOAD_BYTES)",
    )
    return JsonlIngest(store, validator=validator, key=platform_dataset_key(), limits=limits)


datasets = DatasetService()
