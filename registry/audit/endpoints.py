from __future__ import annotations

import dataclasses
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session

from registry.audit.schemas import AnchorOut, AuditEventOut, AuditPage, VerifyOut
from registry.audit.service import audit
from registry.auth import scopes as sc
from registry.auth.principal import Principal
from registry.dependencies import SessionDep, require_scope
from registry.errors import NotFound
from registry.tenants.repository import TenantRepository
from registry.validation_types import INT64_MAX, AwareDatetime

router = APIRouter(prefix="/v1/audit", tags=["audit"])

AuditRead = Annotated[Principal, Depends(require_scope(sc.AUDIT_READ))]
AuditWrite = Annotated[Principal, Depends(require_scope(sc.AUDIT_WRITE))]


def _tenant_id(session: Session, slug: str | None) -> uuid.UUID | None:
    if slug is None:
        return None
    row = TenantRepository(session).get_by_slug(slug)
    if row is None:
        raise NotFound(f"tenant '{slug}' not found")
    return row.id


@router.get("/events", response_model=AuditPage)
def list_events(
    principal: AuditRead,
    session: SessionDep,
    tenant: Annotated[str | None, Query(description="tenant slug")] = None,
    action: str | None = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    after_seq: Annotated[int, Query(ge=0, le=INT64_MAX, description="cursor: next_after_seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    tenant_id = _tenant_id(session, tenant)
    rows = audit.list(
        session,
        tenant_id=tenant_id,
        action=action,
        since=since,
        until=until,
        after_seq=after_seq,
        limit=limit,
    )
    items = [AuditEventOut.model_validate(e) for e in rows]
    return AuditPage(items=items, next_after_seq=items[-1].seq if len(items) == limit else None)


@router.get("/verify", response_model=VerifyOut)
def verify(
    principal: AuditRead,
    session: SessionDep,
    request: Request,
    tenant: Annotated[str | None, Query(description="tenant slug: verify its chain alone")] = None,
) -> VerifyOut:
    """Every chain, the checkpoint chain, the newest anchor and the legacy chain; with `tenant`,
    that tenant's chain, its newest checkpoint entry and the newest anchor's checkpoint."""
    tenant_id = _tenant_id(session, tenant)
    result = audit.verify(session, store=request.app.state.store, tenant_id=tenant_id)
    return VerifyOut(**dataclasses.asdict(result), tenant=tenant)


@router.post("/anchors", response_model=AnchorOut)
def anchor(principal: AuditWrite, session: SessionDep, request: Request) -> AnchorOut:
    """Checkpoint the chain heads changed since the last checkpoint and anchor it in the object
    store now (beat also does, periodically)."""
    settings = request.app.state.settings
    result = audit.anchor(
        session, store=request.app.state.store, retain_days=settings.audit_anchor_retention_days
    )
    return AnchorOut(**dataclasses.asdict(result))
