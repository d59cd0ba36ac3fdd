"""Datasets the platform derives for a tenant (curated from traffic, labelled by a teacher).

They go through exactly what an upload goes through: the tenant's ingest (validation,
de-duplication, row and size limits, content address), then registration (versions, the same
content under the same name is the existing version, the quota under the tenant's lock). What
differs is `Dataset.origin`, which says where the rows came from, and the audit event's details.
Synchronous: a request handler runs it in a thread, a worker calls it directly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson
import structlog
from sqlalchemy.orm import Session

from registry.auth.principal import Principal
from registry.datasets.repository import DatasetRepository
from registry.datasets.schemas import NAME_PATTERN
from registry.datasets.service import datasets, open_ingest
from registry.errors import Unprocessable
from registry.models import Dataset, Tenant
from registry.owned import Registered, register
from registry.settings import Settings
from registry.storage import ObjectStore

log = structlog.get_logger("loraplex.datasets.derived")

_NAME = re.compile(NAME_PATTERN)


def encode_rows(rows: Sequence[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def store_rows(
    session: Session,
    *,
    actor: Principal,
    tenant: Tenant,
    name: str,
    rows: Sequence[dict[str, Any]],
    origin: dict[str, Any],
    store: ObjectStore,
    settings: Settings,
) -> Registered[Dataset]:
    """Keep `rows` as a version of the tenant's dataset `name` with `origin` ({"kind": ...}).

    Refusals (nothing stored): a bad name, no rows, any invalid row (422 with the validation
    report), over the row limit or the quota (413). Same content as the name's latest version:
    that version, `created=False`."""
    if not _NAME.match(name):
        raise Unprocessable(
            f"dataset name '{name}' is invalid: 1-100 characters, letters, digits, '.', '_', '-'"
        )
    if not rows:
        raise Unprocessable(f"no rows to store in dataset '{name}'")
    kind = str(origin.get("kind", ""))
    if not kind:
        raise ValueError("a derived dataset's origin needs a 'kind'")
    ingest = open_ingest(store, tenant, settings)
    try:
        ingest.begin(f"{kind}.jsonl", "application/x-ndjson")
        ingest.feed(encode_rows(rows))
        ingest.end()
        if not ingest.ok:
            raise Unprocessable(
                f"the {kind} rows are not a valid dataset: {ingest.summary()}",
                report=ingest.report.to_dict(),
            )
        done = register(
            session,
            repo=DatasetRepository(session, tenant.id),
            tenant=tenant,
            name=name,
            ingest=ingest,
            noun="dataset",
            insert=lambda stored, version: datasets.insert(
                session,
                actor=actor,
                tenant=tenant,
                name=name,
                ingest=ingest,
                stored=stored,
                version=version,
                origin=origin,
            ),
        )
    except BaseException:
        ingest.abort()
        raise
    log.info(
        "dataset.derived",
        tenant=tenant.slug,
        name=name,
        version=done.row.version,
        kind=kind,
        rows=done.row.rows,
        created=done.created,
    )
    return done
