"""Read queries behind the tenant and adapter pages: a fixed number of statements per page,
whatever the number of tenants, adapters or versions (grouped queries, never one per row).

Tenant data is always filtered on `tenant_id` here, as the registry's repositories do.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from registry.models import Adapter, AdapterVersion, Alias, BaseModel, Eval, Tenant
from registry.models.enums import EvalSubject, VersionStatus

LIMIT = 200  # rows a list shows; one more is fetched to know that it was cut


def like(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class TenantRow:
    slug: str
    display_name: str
    disabled: bool
    adapters: int
    created_at: dt.datetime


def tenants(session: Session, *, q: str, limit: int = LIMIT) -> tuple[list[TenantRow], bool]:
    """Tenants (slug or display name containing `q`) with their active adapters counted in the
    same statement; and whether the list was cut at `limit`."""
    counts = (
        select(Adapter.tenant_id, func.count().label("n"))
        .where(Adapter.archived_at.is_(None))
        .group_by(Adapter.tenant_id)
        .subquery()
    )
    stmt = select(
        Tenant.slug,
        Tenant.display_name,
        Tenant.disabled_at,
        Tenant.created_at,
        func.coalesce(counts.c.n, 0),
    ).outerjoin(counts, counts.c.tenant_id == Tenant.id)
    if q:
        pattern = like(q.lower())
        stmt = stmt.where(
            or_(
                func.lower(Tenant.slug).like(pattern, escape="\\"),
                func.lower(Tenant.display_name).like(pattern, escape="\\"),
            )
        )
    rows = [
        TenantRow(slug, name, disabled is not None, int(n), created)
        for slug, name, disabled, created, n in session.execute(
            stmt.order_by(Tenant.slug).limit(limit + 1)
        )
    ]
    return rows[:limit], len(rows) > limit


@dataclass(frozen=True)
class AdapterRow:
    name: str
    base_model: str
    archived: bool
    production: int | None
    newest: int | None
    newest_status: str | None
    created_at: dt.datetime


def adapters(
    session: Session, *, tenant_id: uuid.UUID, q: str, limit: int = LIMIT
) -> tuple[list[AdapterRow], bool]:
    """A tenant's adapters (name containing `q`) with production and newest version: three
    statements in all."""
    stmt = (
        select(Adapter, BaseModel.name)
        .join(BaseModel, BaseModel.id == Adapter.base_model_id)
        .where(Adapter.tenant_id == tenant_id)
    )
    if q:
        stmt = stmt.where(func.lower(Adapter.name).like(like(q.lower()), escape="\\"))
    found = session.execute(
        stmt.order_by(Adapter.archived_at.is_not(None), Adapter.name).limit(limit + 1)
    ).all()
    cut = len(found) > limit
    found = found[:limit]
    ids = [a.id for a, _ in found]
    production = aliased_numbers(session, tenant_id=tenant_id, adapter_ids=ids, alias="production")
    newest = newest_versions(session, tenant_id=tenant_id, adapter_ids=ids)
    rows = [
        AdapterRow(
            name=a.name,
            base_model=base,
            archived=a.archived_at is not None,
            production=production.get(a.id),
            newest=newest[a.id][0] if a.id in newest else None,
            newest_status=newest[a.id][1] if a.id in newest else None,
            created_at=a.created_at,
        )
        for a, base in found
    ]
    return rows, cut


def aliased_numbers(
    session: Session, *, tenant_id: uuid.UUID, adapter_ids: list[uuid.UUID], alias: str
) -> dict[uuid.UUID, int]:
    if not adapter_ids:
        return {}
    stmt = (
        select(Alias.adapter_id, AdapterVersion.version)
        .join(AdapterVersion, AdapterVersion.id == Alias.version_id)
        .where(
            Alias.tenant_id == tenant_id,
            Alias.alias == alias,
            Alias.adapter_id.in_(adapter_ids),
        )
    )
    return {a: n for a, n in session.execute(stmt)}


def newest_versions(
    session: Session, *, tenant_id: uuid.UUID, adapter_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, str]]:
    if not adapter_ids:
        return {}
    top = (
        select(AdapterVersion.adapter_id, func.max(AdapterVersion.version).label("n"))
        .where(AdapterVersion.tenant_id == tenant_id, AdapterVersion.adapter_id.in_(adapter_ids))
        .group_by(AdapterVersion.adapter_id)
        .subquery()
    )
    stmt = select(AdapterVersion.adapter_id, AdapterVersion.version, AdapterVersion.status).join(
        top,
        (top.c.adapter_id == AdapterVersion.adapter_id) & (top.c.n == AdapterVersion.version),
    )
    return {a: (n, str(s)) for a, n, s in session.execute(stmt)}


@dataclass(frozen=True)
class VersionRow:
    id: uuid.UUID
    version: int
    status: str
    status_message: str
    trigger: str
    created_by: str
    created_at: dt.datetime
    manifest_digest: str | None
    job_id: str | None
    eval_loss: float | None = None


def versions(
    session: Session, *, tenant_id: uuid.UUID, adapter_id: uuid.UUID, limit: int = LIMIT
) -> tuple[list[VersionRow], bool]:
    """Newest first, only the columns the table shows (not manifests or configs), each with
    its held-out eval loss when it has one: two statements."""
    stmt = (
        select(
            AdapterVersion.id,
            AdapterVersion.version,
            AdapterVersion.status,
            AdapterVersion.status_message,
            AdapterVersion.trigger,
            AdapterVersion.created_by,
            AdapterVersion.created_at,
            AdapterVersion.manifest_digest,
            AdapterVersion.job_id,
        )
        .where(AdapterVersion.tenant_id == tenant_id, AdapterVersion.adapter_id == adapter_id)
        .order_by(AdapterVersion.version.desc())
    )
    found = session.execute(stmt.limit(limit + 1)).all()
    cut = len(found) > limit
    rows = [
        VersionRow(
            id=r.id,
            version=r.version,
            status=str(r.status),
            status_message=r.status_message or "",
            trigger=str(r.trigger),
            created_by=r.created_by,
            created_at=r.created_at,
            manifest_digest=r.manifest_digest,
            job_id=r.job_id,
        )
        for r in found[:limit]
    ]
    losses = heldout_losses(session, tenant_id=tenant_id, version_ids=[r.id for r in rows])
    rows = [
        VersionRow(**{**r.__dict__, "eval_loss": losses.get(r.id)}) if r.id in losses else r
        for r in rows
    ]
    return rows, cut


def heldout_losses(
    session: Session, *, tenant_id: uuid.UUID, version_ids: list[uuid.UUID]
) -> dict[uuid.UUID, float]:
    """Each version's eval loss on its own held-out split (suite `heldout-<digest>`, no suite
    row; a production version scored on a newer candidate's split says `scored_for` and is
    skipped), its newest such eval: one statement."""
    if not version_ids:
        return {}
    stmt = (
        select(Eval.version_id, Eval.metrics, Eval.details)
        .where(
            Eval.tenant_id == tenant_id,
            Eval.version_id.in_(version_ids),
            Eval.subject == EvalSubject.VERSION,
            Eval.suite_id.is_(None),
            or_(Eval.suite == "heldout", Eval.suite.like("heldout-%")),
        )
        .order_by(Eval.created_at)
    )
    out: dict[uuid.UUID, float] = {}
    for version_id, metrics, details in session.execute(stmt):
        value = (metrics or {}).get("eval_loss")
        if "scored_for" in (details or {}) or not isinstance(value, int | float):
            continue
        out[version_id] = float(value)
    return out


def ready_before(
    session: Session, *, tenant_id: uuid.UUID, adapter_id: uuid.UUID, number: int
) -> int | None:
    """The newest ready version older than `number`: where a roll back of production goes."""
    stmt = (
        select(AdapterVersion.version)
        .where(
            AdapterVersion.tenant_id == tenant_id,
            AdapterVersion.adapter_id == adapter_id,
            AdapterVersion.status == VersionStatus.READY,
            AdapterVersion.version < number,
        )
        .order_by(AdapterVersion.version.desc())
        .limit(1)
    )
    found = session.execute(stmt).scalar_one_or_none()
    return int(found) if found is not None else None


@dataclass(frozen=True)
class AliasRow:
    alias: str
    version: int
    updated_by: str
    updated_at: dt.datetime


def aliases(session: Session, *, tenant_id: uuid.UUID, adapter_id: uuid.UUID) -> list[AliasRow]:
    stmt = (
        select(Alias.alias, AdapterVersion.version, Alias.updated_by, Alias.updated_at)
        .join(AdapterVersion, AdapterVersion.id == Alias.version_id)
        .where(Alias.tenant_id == tenant_id, Alias.adapter_id == adapter_id)
        .order_by(Alias.alias)
    )
    return [AliasRow(a, n, by, at) for a, n, by, at in session.execute(stmt)]


def base_model_name(session: Session, base_model_id: uuid.UUID) -> str:
    found = session.execute(
        select(BaseModel.name).where(BaseModel.id == base_model_id)
    ).scalar_one_or_none()
    return found or "?"
