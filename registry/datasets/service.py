"""Dataset versions: streamed, validated uploads that become immutable, content-addressed rows."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.datasets.ingest import DatasetIngest
from registry.datasets.repository import DatasetRepository
from registry.datasets.schemas import NAME_PATTERN
from registry.errors import NotFound, PayloadTooLarge, Unprocessable
from registry.models import Dataset, Tenant
from registry.settings import Settings
from registry.storage import ObjectStore, StoredObject
from registry.tenants.repository import TenantRepository
from registry.uploads import read_streaming_form

_NAME = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class UploadOutcome:
    dataset: Dataset
    created: bool  # False when the same name already had exactly this content


class DatasetService:
    async def upload(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        content_type: str | None,
        body: AsyncIterator[bytes],
        store: ObjectStore,
        settings: Settings,
    ) -> UploadOutcome:
        # While streaming, refuse only what could never fit (content may dedupe against what
        # the tenant already stores); the exact check runs at registration, under a lock.
        ingest = DatasetIngest(
            store,
            tenant_id=tenant.id,
            max_line_bytes=settings.max_line_bytes,
            max_stored_bytes=tenant.quota_dataset_bytes,
            max_rows=settings.dataset_max_rows,
            max_tools=settings.dataset_max_tools,
            schema_steps=settings.dataset_schema_steps,
        )
        try:
            form = await read_streaming_form(
                content_type,
                body,
                sinks={"file": lambda: ingest},
                max_body_bytes=settings.max_upload_bytes + (64 << 10),
            )
            name = form.fields.get("name", "")
            if not _NAME.match(name):
                raise Unprocessable(
                    "field 'name' is required: 1-100 characters, letters, digits, '.', '_', '-'"
                )
            if "file" not in form.files:
                raise Unprocessable("field 'file' (the JSONL file) is required")
            if not ingest.ok:
                raise Unprocessable(_summary(ingest), report=ingest.report.to_dict())
            return await run_in_threadpool(
                self._register, session, actor=actor, tenant=tenant, name=name, ingest=ingest
            )
        except BaseException:
            await run_in_threadpool(ingest.abort)
            raise

    def _register(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        name: str,
        ingest: DatasetIngest,
    ) -> UploadOutcome:
        TenantRepository(session).lock(tenant)  # serializes quota and version numbers per tenant
        repo = DatasetRepository(session, tenant.id)
        latest = repo.latest(name)
        if latest is not None and latest.sha256 == ingest.sha256:
            ingest.abort()
            return UploadOutcome(latest, created=False)
        known = repo.has_digest(ingest.sha256)
        if not known:
            used = repo.stored_bytes()
            if used + ingest.stored_bytes > tenant.quota_dataset_bytes:
                raise PayloadTooLarge(
                    f"dataset quota exceeded: {used:,} of {tenant.quota_dataset_bytes:,} bytes "
                    f"used, this dataset needs {ingest.stored_bytes:,}"
                )
        stored = ingest.commit()
        try:
            return self._insert(
                session,
                actor=actor,
                tenant=tenant,
                name=name,
                ingest=ingest,
                stored=stored,
                version=(latest.version + 1) if latest else 1,
            )
        except BaseException:
            if not known:  # the object is ours alone: take it back
                ingest.store.delete(stored.key)
            raise

    def _insert(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        name: str,
        ingest: DatasetIngest,
        stored: StoredObject,
        version: int,
    ) -> UploadOutcome:
        report = ingest.report
        dataset = Dataset(
            tenant_id=tenant.id,
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
            created_by=actor.subject,
        )
        DatasetRepository(session, tenant.id).add(dataset)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="dataset.create",
            target_type="dataset",
            target_id=str(dataset.id),
            tenant_id=tenant.id,
            details={
                "name": name,
                "version": dataset.version,
                "sha256": dataset.sha256,
                "rows": dataset.rows,
                "tool_rows": dataset.tool_rows,
                "duplicates_dropped": dataset.duplicates_dropped,
                "filename": ingest.filename,
            },
        )
        return UploadOutcome(dataset, created=True)

    def list(
        self, session: Session, *, tenant: Tenant, name: str | None, limit: int, offset: int
    ) -> Sequence[Dataset]:
        return DatasetRepository(session, tenant.id).list(name=name, limit=limit, offset=offset)

    def get(self, session: Session, *, tenant: Tenant, dataset_id: uuid.UUID) -> Dataset:
        dataset = DatasetRepository(session, tenant.id).get(dataset_id)
        if dataset is None:
            raise NotFound(f"dataset '{dataset_id}' not found")
        return dataset

    def open_content(self, store: ObjectStore, dataset: Dataset) -> Iterator[bytes]:
        return store.iter_chunks(dataset.object_key)


def _summary(ingest: DatasetIngest) -> str:
    r = ingest.report
    if not ingest.finished:
        return "the upload ended before the file was complete"
    if r.invalid:
        first = r.errors[0]
        return (
            f"{r.invalid} of {r.lines} lines are invalid; nothing was stored. "
            f"First: line {first.line}: {first.reason}"
        )
    return r.errors[0].reason if r.errors else "the file has no rows"


datasets = DatasetService()
