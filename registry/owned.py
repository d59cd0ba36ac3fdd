"""Immutable, versioned uploads owned by a tenant or by the platform, de-duplicated by their
content's sha256: datasets and eval suites share their repository queries and their registration.

An owner is a tenant, or with `tenant_id` None the platform (ops' rows: `tenant_id IS NULL`);
the two never mix. A name's versions are numbered 1, 2, 3... under a lock (the tenant's row, or
a transaction-scoped advisory lock for the platform), the same content under the same name is
the existing version, and a tenant's datasets and eval suites share one quota, each distinct
digest counted once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from fastapi import Request, Response
from sqlalchemy import ColumnElement, Select, func, select, text
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from registry.datasets.ingest import JsonlIngest, receive
from registry.errors import PayloadTooLarge
from registry.models import Dataset, EvalSuite, Tenant
from registry.settings import Settings
from registry.storage import ObjectStore, StoredObject
from registry.tenants.repository import TenantRepository

Row = TypeVar("Row", Dataset, EvalSuite)


def advisory_key(name: str) -> int:
    """A fixed 64-bit `pg_advisory_xact_lock` key: the first 8 bytes of sha256(name)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class OwnedRepository(Generic[Row]):
    """Every query is scoped to one owner through `_owned`."""

    model: ClassVar[Any]
    lock_name: ClassVar[str]

    def __init__(self, session: Session, tenant_id: uuid.UUID | None) -> None:
        self.session, self.tenant_id = session, tenant_id

    def _owned(self) -> ColumnElement[bool]:
        column = self.model.tenant_id
        return column.is_(None) if self.tenant_id is None else column == self.tenant_id

    def _base(self) -> Select[Any]:
        return select(self.model).where(self._owned())

    def lock_platform(self) -> None:
        """Serialize platform registrations (version numbers) until this transaction ends.

        A tenant's are serialized by locking its `tenants` row; the platform has no row of its
        own, and locking a shared one (the audit chain head) would hold every audited write in
        the registry while a large upload is completed. A transaction-scoped advisory
        lock on a fixed key blocks exactly the other platform uploads of this kind and is
        released on commit or rollback. SQLite (embedded, one writer at a time) has none: the
        unique index on (name, version) refuses a racing duplicate there.
        """
        if self.session.get_bind().dialect.name == "postgresql":
            key = advisory_key(self.lock_name)
            self.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    def get(self, row_id: uuid.UUID) -> Row | None:
        stmt = self._base().where(self.model.id == row_id)
        found: Row | None = self.session.execute(stmt).scalar_one_or_none()
        return found

    def get_version(self, name: str, version: int | None) -> Row | None:
        """`name` at `version`, or its latest version with None."""
        if version is None:
            return self.latest(name)
        stmt = self._base().where(self.model.name == name, self.model.version == version)
        found: Row | None = self.session.execute(stmt).scalar_one_or_none()
        return found

    def list(self, *, name: str | None, limit: int, offset: int) -> Sequence[Row]:
        stmt = self._base()
        if name is not None:
            stmt = stmt.where(self.model.name == name)
        stmt = stmt.order_by(self.model.created_at.desc(), self.model.version.desc())
        return self.session.execute(stmt.limit(limit).offset(offset)).scalars().all()

    def latest(self, name: str) -> Row | None:
        stmt = self._base().where(self.model.name == name).order_by(self.model.version.desc())
        found: Row | None = self.session.execute(stmt.limit(1)).scalar_one_or_none()
        return found

    def stored_bytes(self) -> int:
        """Bytes the owner's rows occupy: content shared by digest, so each digest counts once."""
        return _distinct_bytes(self.session, self.model, self._owned())

    def with_digest(self, sha256: str) -> Row | None:
        """The owner's first row holding this content: its object is the content's one copy."""
        stmt = self._base().where(self.model.sha256 == sha256)
        stmt = stmt.order_by(self.model.created_at, self.model.id).limit(1)
        found: Row | None = self.session.execute(stmt).scalar_one_or_none()
        return found

    def add(self, row: Row) -> None:
        self.session.add(row)


@dataclass(frozen=True)
class Registered(Generic[Row]):
    row: Row
    created: bool  # False when the same name already had exactly this content


def _distinct_bytes(session: Session, model: Any, owned: ColumnElement[bool]) -> int:
    distinct = (
        select(model.sha256, func.max(model.bytes).label("bytes"))
        .where(owned)
        .group_by(model.sha256)
        .subquery()
    )
    return int(session.execute(select(func.coalesce(func.sum(distinct.c.bytes), 0))).scalar_one())


def tenant_stored_bytes(session: Session, tenant_id: uuid.UUID) -> int:
    """What counts against a tenant's dataset quota: its datasets and its eval suites."""
    return sum(
        _distinct_bytes(session, model, model.tenant_id == tenant_id)
        for model in (Dataset, EvalSuite)
    )


def register(
    session: Session,
    *,
    repo: OwnedRepository[Row],
    tenant: Tenant | None,
    name: str,
    ingest: JsonlIngest,
    noun: str,
    insert: Callable[[StoredObject, int], Row],
) -> Registered[Row]:
    """Number, de-duplicate and keep one validated upload whose rows were streamed to their key
    but not committed yet; `insert(stored, version)` writes the row and its audit event.

    Content the owner already stores (same sha256) is kept once: the upload is aborted and the
    new row points at the existing row's object (an old `.../sha256/<digest>.jsonl` key or an
    upload's key alike). Otherwise the upload is committed, and taken back if the row fails."""
    if tenant is not None:
        TenantRepository(session).lock(tenant)
    else:
        repo.lock_platform()
    latest = repo.latest(name)
    if latest is not None and latest.sha256 == ingest.sha256:
        ingest.abort()
        return Registered(latest, created=False)
    same = repo.with_digest(ingest.sha256)
    # The platform has no quota: each upload is bounded by LORAPLEX_MAX_UPLOAD_BYTES.
    if same is None and tenant is not None:
        used = tenant_stored_bytes(session, tenant.id)
        if used + ingest.stored_bytes > tenant.quota_dataset_bytes:
            raise PayloadTooLarge(
                f"dataset quota exceeded: {used:,} of {tenant.quota_dataset_bytes:,} bytes used "
                f"by datasets and eval suites, this {noun} needs {ingest.stored_bytes:,}"
            )
    if same is not None:
        ingest.abort()  # nothing of this upload stays: the content is stored already
        stored = StoredObject(key=same.object_key, sha256=ingest.sha256, size=ingest.stored_bytes)
    else:
        stored = ingest.commit()
    try:
        return Registered(insert(stored, (latest.version + 1) if latest else 1), created=True)
    except BaseException:
        if same is None:  # the object is ours alone: take it back
            ingest.store.delete(stored.key)
        raise


async def upload(
    session: Session,
    *,
    repo: OwnedRepository[Row],
    tenant: Tenant | None,
    ingest: JsonlIngest,
    noun: str,
    content_type: str | None,
    body: AsyncIterator[bytes],
    max_upload_bytes: int,
    insert: Callable[[str, StoredObject, int], Row],
) -> Registered[Row]:
    """Stream the multipart form through `ingest`, then `register` it under the form's `name`
    (in a worker thread; `insert(name, stored, version)` writes the row); anything that fails
    leaves nothing stored."""
    try:
        name = await receive(
            ingest, content_type=content_type, body=body, max_upload_bytes=max_upload_bytes
        )
        return await run_in_threadpool(
            register,
            session,
            repo=repo,
            tenant=tenant,
            name=name,
            ingest=ingest,
            noun=noun,
            insert=lambda stored, version: insert(name, stored, version),
        )
    except BaseException:
        await run_in_threadpool(ingest.abort)
        raise


class Uploader(Protocol[Row]):
    def __call__(
        self,
        *,
        content_type: str | None,
        body: AsyncIterator[bytes],
        store: ObjectStore,
        settings: Settings,
    ) -> Awaitable[Registered[Row]]: ...


async def answer_upload(request: Request, response: Response, upload_to: Uploader[Row]) -> Row:
    """An upload endpoint's body: stream the request into `upload_to` (a service's `upload`
    with its owner bound); 201 for a new version, 200 when the name already held exactly this
    content."""
    done = await upload_to(
        content_type=request.headers.get("content-type"),
        body=request.stream(),
        store=request.app.state.store,
        settings=request.app.state.settings,
    )
    if not done.created:
        response.status_code = 200
    return done.row
