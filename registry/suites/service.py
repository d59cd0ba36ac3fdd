"""Eval-suite versions: a tenant's suites and ops' platform suites (`tenant=None`), uploaded like
datasets: validated while they stream, de-duplicated by their sha256, immutable.

A tenant's suites count against its dataset quota together with its datasets; a platform suite
is bounded by the upload limit alone. Names and versions are per owner: a tenant's `golden` and
the platform's `golden` are different suites.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.datasets.ingest import IngestLimits, JsonlIngest, upload_key
from registry.errors import Conflict, NotFound
from registry.models import EvalSuite, Tenant
from registry.models.enums import SuiteFormat
from registry.owned import Registered, upload
from registry.settings import Settings
from registry.storage import ObjectStore, StoredObject
from registry.suites.repository import EvalSuiteRepository
from registry.suites.validation import SuiteReport, SuiteValidator


def suite_key(tenant_id: uuid.UUID | None) -> str:
    """A fresh key for one upload (older suites' rows keep their `.../sha256/<digest>.jsonl`)."""
    return upload_key(
        "platform/eval-suites" if tenant_id is None else f"tenants/{tenant_id}/eval-suites"
    )


def _what(tenant_id: uuid.UUID | None) -> str:
    return "eval suite" if tenant_id is not None else "platform eval suite"


class EvalSuiteService:
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
    ) -> Registered[EvalSuite]:
        """Store one suite version for `tenant`, or for the platform with `tenant=None`."""
        ingest = _ingest(store, tenant, settings)
        tenant_id = tenant.id if tenant else None

        return await upload(
            session,
            repo=EvalSuiteRepository(session, tenant_id),
            tenant=tenant,
            ingest=ingest,
            noun="eval suite",
            content_type=content_type,
            body=body,
            max_upload_bytes=settings.max_upload_bytes,
            insert=lambda name, stored, version: self._insert(
                session,
                actor=actor,
                tenant_id=tenant_id,
                name=name,
                ingest=ingest,
                stored=stored,
                version=version,
            ),
        )

    def _insert(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant_id: uuid.UUID | None,
        name: str,
        ingest: JsonlIngest,
        stored: StoredObject,
        version: int,
    ) -> EvalSuite:
        report = ingest.report
        if not isinstance(report, SuiteReport) or report.format is None:
            raise RuntimeError("an eval suite ingest reports its format and check counts")
        suite = EvalSuite(
            tenant_id=tenant_id,
            name=name,
            version=version,
            format=SuiteFormat(report.format),
            sha256=stored.sha256,
            bytes=stored.size,
            rows=report.rows,
            duplicates_dropped=report.duplicates,
            check_counts=report.ordered_counts(),
            source_sha256=ingest.source_hash.hexdigest(),
            source_bytes=ingest.source_bytes,
            object_key=stored.key,
            created_by=actor.subject,
        )
        EvalSuiteRepository(session, tenant_id).add(suite)
        try:
            with session.begin_nested():
                session.flush()
        except IntegrityError as exc:  # SQLite, or a race the locks did not cover
            raise Conflict(
                f"another upload created version {version} of {_what(tenant_id)} '{name}' "
                "first; upload again"
            ) from exc
        audit.record(
            session,
            actor=actor,
            action="eval_suite.create",
            target_type="eval_suite",
            target_id=str(suite.id),
            tenant_id=tenant_id,
            details={
                "name": name,
                "version": version,
                "owner": "tenant" if tenant_id else "platform",
                "format": suite.format.value,
                "sha256": suite.sha256,
                "rows": suite.rows,
                "duplicates_dropped": suite.duplicates_dropped,
                "check_counts": suite.check_counts,
                "filename": ingest.filename,
            },
        )
        return suite

    def list(
        self,
        session: Session,
        *,
        tenant: Tenant | None,
        name: str | None,
        limit: int,
        offset: int,
    ) -> Sequence[EvalSuite]:
        repo = EvalSuiteRepository(session, tenant.id if tenant else None)
        return repo.list(name=name, limit=limit, offset=offset)

    def get(self, session: Session, *, tenant: Tenant | None, suite_id: uuid.UUID) -> EvalSuite:
        tenant_id = tenant.id if tenant else None
        suite = EvalSuiteRepository(session, tenant_id).get(suite_id)
        if suite is None:
            raise NotFound(f"{_what(tenant_id)} '{suite_id}' not found")
        return suite

    def resolve(
        self, session: Session, tenant_id: uuid.UUID | None, name: str, version: int | None
    ) -> EvalSuite:
        """`name` at `version` (None: its latest) of this owner (None: the platform), or 404."""
        suite = EvalSuiteRepository(session, tenant_id).get_version(name, version)
        if suite is None:
            which = f"version {version} of " if version is not None else ""
            raise NotFound(f"{which}{_what(tenant_id)} '{name}' not found")
        return suite


def _ingest(store: ObjectStore, tenant: Tenant | None, settings: Settings) -> JsonlIngest:
    """While streaming, refuse only what could never fit (content may dedupe against what the
    tenant already stores); the exact quota check runs at registration, under the lock."""
    validator = SuiteValidator(
        max_line_bytes=settings.max_line_bytes,
        max_tools=settings.dataset_max_tools,
        schema_steps=settings.dataset_schema_steps,
    )
    tenant_id = tenant.id if tenant else None
    limits = IngestLimits(
        max_stored_bytes=tenant.quota_dataset_bytes if tenant else settings.max_upload_bytes,
        max_rows=settings.eval_suite_max_rows,
        noun="eval suite",
        rows_setting="LORAPLEX_EVAL_SUITE_MAX_ROWS",
    )
    if tenant is None:
        limits = replace(
            limits,
            stored_limit="upload limit exceeded: the suite is larger than the upload limit "
            "(LORAPLEX_MAX_UPLOAD_BYTES)",
        )
    return JsonlIngest(store, validator=validator, key=suite_key(tenant_id), limits=limits)


suites = EvalSuiteService()
