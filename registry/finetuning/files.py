"""OpenAI's files over loraplex's datasets: an upload is a dataset version under an id of its own.

A valid upload registers a dataset version exactly as `POST /v1/tenants/{t}/datasets` does (the
same streaming validation, limits, quota, content addressing and de-duplication), named after the
file's stem, and gets a `TenantFile` row: two uploads of the same bytes are two files over one
version. A file that fails row validation is not an HTTP error (OpenAI validates later and
reports it on the job): its row has `status="error"` and the validator's message naming the
line, and nothing reaches the object store. Deleting a file only hides it: its dataset version
stays in the registry (a version trained on it keeps its lineage; the registry API still lists
it), so nothing else is removed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.datasets.ingest import JsonlIngest
from registry.datasets.repository import DatasetRepository
from registry.datasets.service import datasets, open_ingest
from registry.db import utcnow
from registry.finetuning import ids
from registry.finetuning.errors import OpenAIError
from registry.finetuning.results import RESULTS_PURPOSE, render_csv
from registry.models import Dataset, Tenant
from registry.models.finetuning import TenantFile
from registry.owned import register
from registry.settings import Settings
from registry.storage import ObjectStore
from registry.storage.base import ObjectNotFound
from registry.uploads import read_streaming_form

log = structlog.get_logger(__name__)

FINE_TUNE = "fine-tune"
SUPPORTED_PURPOSES = (FINE_TUNE,)
PROCESSED, ERROR = "processed", "error"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
Order = Literal["asc", "desc"]


def dataset_name(filename: str) -> str:
    """The dataset a file's rows are registered under: its stem, in dataset-name characters."""
    stem = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem.lstrip(".") else stem
    name = _UNSAFE.sub("-", stem).lstrip("._-")[:100]
    return name or "file"


def not_found(file_id: str, param: str | None = None) -> OpenAIError:
    return OpenAIError(404, f"No such File object: {file_id}", code="file_not_found", param=param)


class FileRepository:
    """A tenant's files; `_base` holds the tenant filter (and hides deleted files)."""

    def __init__(self, session: Session, tenant_id: uuid.UUID) -> None:
        self.session, self.tenant_id = session, tenant_id

    def _base(self, *, deleted: bool = False) -> Select[Any]:
        stmt = select(TenantFile).where(TenantFile.tenant_id == self.tenant_id)
        return stmt if deleted else stmt.where(TenantFile.deleted_at.is_(None))

    def get(self, row_id: uuid.UUID, *, deleted: bool = False) -> TenantFile | None:
        stmt = self._base(deleted=deleted).where(TenantFile.id == row_id)
        found: TenantFile | None = self.session.execute(stmt).scalar_one_or_none()
        return found

    def page(
        self, *, purpose: str | None, limit: int, order: Order, after: TenantFile | None
    ) -> Sequence[TenantFile]:
        """Up to `limit` files after the cursor, ordered by (created_at, id)."""
        stmt = self._base()
        if purpose is not None:
            stmt = stmt.where(TenantFile.purpose == purpose)
        key = (TenantFile.created_at, TenantFile.id)
        if after is not None:
            at, aid = after.created_at, after.id
            if order == "desc":
                stmt = stmt.where(or_(key[0] < at, and_(key[0] == at, key[1] < aid)))
            else:
                stmt = stmt.where(or_(key[0] > at, and_(key[0] == at, key[1] > aid)))
        cols = [c.desc() for c in key] if order == "desc" else list(key)
        rows: Sequence[TenantFile] = (
            self.session.execute(stmt.order_by(*cols).limit(limit)).scalars().all()
        )
        return rows


@dataclass(frozen=True)
class FileContent:
    chunks: Iterator[bytes]
    size: int | None
    media_type: str
    filename: str


class FileService:
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
    ) -> TenantFile:
        """Stream a multipart form (`file`, `purpose`) into a dataset ingest; a file refused for
        its rows is recorded as an error file, any other refusal is an HTTP error with no row."""
        ingest = open_ingest(store, tenant, settings)
        try:
            form = await read_streaming_form(
                content_type,
                body,
                sinks={"file": lambda: ingest},
                max_body_bytes=settings.max_upload_bytes + (64 << 10),
            )
            _check_form(form.fields, form.files)
            if not ingest.ok:
                await run_in_threadpool(ingest.abort)
                return await run_in_threadpool(self._refused, session, actor, tenant, ingest)
            return await run_in_threadpool(self._register, session, actor, tenant, ingest)
        except BaseException:
            await run_in_threadpool(ingest.abort)
            raise

    def _register(
        self, session: Session, actor: Principal, tenant: Tenant, ingest: JsonlIngest
    ) -> TenantFile:
        name = dataset_name(ingest.filename)
        made: list[TenantFile] = []

        def insert(stored: Any, version: int) -> Dataset:
            # the file row is written inside `register`, so a failure takes the object back
            ds = datasets.insert(
                session,
                actor=actor,
                tenant=tenant,
                name=name,
                ingest=ingest,
                stored=stored,
                version=version,
            )
            made.append(self._record(session, actor, tenant, ingest, dataset=ds))
            return ds

        done = register(
            session,
            repo=DatasetRepository(session, tenant.id),
            tenant=tenant,
            name=name,
            ingest=ingest,
            noun="dataset",
            insert=insert,
        )
        return made[0] if made else self._record(session, actor, tenant, ingest, dataset=done.row)

    def _refused(
        self, session: Session, actor: Principal, tenant: Tenant, ingest: JsonlIngest
    ) -> TenantFile:
        return self._record(session, actor, tenant, ingest, dataset=None)

    def _record(
        self,
        session: Session,
        actor: Principal,
        tenant: Tenant,
        ingest: JsonlIngest,
        *,
        dataset: Dataset | None,
    ) -> TenantFile:
        error = None if dataset is not None else refusal(ingest)
        row = TenantFile(
            id=uuid.uuid4(),
            tenant_id=tenant.id,
            filename=(ingest.filename or "file.jsonl")[:255],
            purpose=FINE_TUNE,
            bytes=ingest.source_bytes,
            status=PROCESSED if dataset is not None else ERROR,
            error=error,
            dataset_id=dataset.id if dataset is not None else None,
            created_by=actor.subject,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        details: dict[str, Any] = {
            "filename": row.filename,
            "purpose": row.purpose,
            "status": row.status,
            "bytes": row.bytes,
            "dataset_id": str(dataset.id) if dataset is not None else None,
        }
        if error is not None:
            details["error"] = {"line": error["line"], "message": error["message"]}
        audit.record(
            session,
            actor=actor,
            action="file.create",
            target_type="file",
            target_id=ids.encode(ids.FILE, row.id),
            tenant_id=tenant.id,
            details=details,
        )
        log.info("file.created", file=str(row.id), status=row.status, tenant=tenant.slug)
        return row

    def find(self, session: Session, *, tenant: Tenant, file_id: str) -> TenantFile | None:
        """A live file of this tenant by its OpenAI id; None for unknown, malformed, another
        tenant's or deleted ids alike (for the jobs API's `training_file` checks too)."""
        row_id = ids.decode(ids.FILE, file_id)
        return None if row_id is None else FileRepository(session, tenant.id).get(row_id)

    def get(
        self, session: Session, *, tenant: Tenant, file_id: str, param: str | None = None
    ) -> TenantFile:
        row = self.find(session, tenant=tenant, file_id=file_id)
        if row is None:
            raise not_found(file_id, param)
        return row

    def list(
        self,
        session: Session,
        *,
        tenant: Tenant,
        purpose: str | None,
        limit: int,
        order: Order,
        after: str | None,
    ) -> tuple[Sequence[TenantFile], bool]:
        """One page and whether more follow. `after` may name a file deleted since the last
        page (a cursor stays valid); an id that is not this tenant's answers 404."""
        repo = FileRepository(session, tenant.id)
        cursor = None
        if after is not None:
            row_id = ids.decode(ids.FILE, after)
            cursor = repo.get(row_id, deleted=True) if row_id is not None else None
            if cursor is None:
                raise not_found(after, "after")
        rows = repo.page(purpose=purpose, limit=limit + 1, order=order, after=cursor)
        return rows[:limit], len(rows) > limit

    def content(
        self, session: Session, *, tenant: Tenant, store: ObjectStore, file_id: str
    ) -> FileContent:
        """The bytes behind a file: its dataset's stored rows, or a result file's CSV."""
        row = self.get(session, tenant=tenant, file_id=file_id)
        if row.status == ERROR or (row.dataset_id is None and row.job_id is None):
            raise OpenAIError(
                400,
                f"File {file_id} was refused at upload ({(row.error or {}).get('message')}); "
                "its content was not kept. Fix the file and upload it again.",
                code="file_not_kept",
            )
        if row.purpose == RESULTS_PURPOSE and row.job_id is not None:
            return _result_content(session, store, row)
        dataset = DatasetRepository(session, tenant.id).get(row.dataset_id)  # type: ignore[arg-type]
        if dataset is None:
            raise not_found(file_id)
        return FileContent(
            store.iter_chunks(dataset.object_key), dataset.bytes, "application/jsonl", row.filename
        )

    def delete(self, session: Session, *, actor: Principal, tenant: Tenant, file_id: str) -> str:
        row = self.get(session, tenant=tenant, file_id=file_id)
        row.deleted_at = utcnow()
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="file.delete",
            target_type="file",
            target_id=file_id,
            tenant_id=tenant.id,
            details={"filename": row.filename, "purpose": row.purpose},
        )
        log.info("file.deleted", file=str(row.id), tenant=tenant.slug)
        return ids.encode(ids.FILE, row.id)


def _check_form(fields: dict[str, str], files: list[str]) -> None:
    purpose = fields.get("purpose")
    supported = ", ".join(f"'{p}'" for p in SUPPORTED_PURPOSES)
    if not purpose:
        raise OpenAIError(400, f"'purpose' is required; supported: {supported}", param="purpose")
    if purpose not in SUPPORTED_PURPOSES:
        raise OpenAIError(
            400,
            f"purpose '{purpose[:64]}' is not supported here; supported: {supported}",
            code="unsupported_purpose",
            param="purpose",
        )
    if any(k.startswith("expires_after") for k in fields):
        raise OpenAIError(
            400, "files do not expire here: leave out 'expires_after'", param="expires_after"
        )
    if "file" not in files:
        raise OpenAIError(400, "field 'file' (the JSONL file) is required", param="file")


def refusal(ingest: JsonlIngest) -> dict[str, Any]:
    """An error file's `error`: the first bad line and the validator's reason."""
    r = ingest.report
    first = r.errors[0] if r.errors else None
    line = first.line if first is not None and first.line > 0 else None
    if first is not None and line is not None:
        message = f"Line {line}: {first.reason}"
        if r.invalid > 1:
            message += f" ({r.invalid} of {r.lines} lines are invalid)"
    else:
        message = ingest.summary()
    return {"code": "invalid_file", "message": message, "param": None, "line": line}


def _result_content(session: Session, store: ObjectStore, row: TenantFile) -> FileContent:
    """The stored CSV; rendered again from the job's metrics events if the object is gone."""
    if row.object_key:
        try:
            return FileContent(store.iter_chunks(row.object_key), None, "text/csv", row.filename)
        except ObjectNotFound:
            log.warning("file.result_object_missing", file=str(row.id), key=row.object_key)
    data = render_csv(session, tenant_id=row.tenant_id, job_id=row.job_id)  # type: ignore[arg-type]
    return FileContent(iter([data]), len(data), "text/csv", row.filename)


files = FileService()
