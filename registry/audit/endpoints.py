from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from registry.audit.schemas import AuditEventOut, AuditPage, VerifyOut
from registry.audit.service import audit
from registry.auth import scopes as sc
from registry.auth.principal import Principal
from registry.dependencies import SessionDep, require_scope
from registry.errors import NotFound
from registry.tenants.repository import TenantRepository

router = APIRouter(prefix="/v1/audit", tags=["audit"])

AuditRead = Annotated[Principal, Depends(require_scope(sc.AUDIT_READ))]


@router.get("/events", response_model=AuditPage)
def list_events(
    principal: AuditRead,
    session: SessionDep,
    tenant: Annotated[str | None, Query(description="tenant slug")] = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    after_seq: Annotated[int, Query(ge=0, description="cursor: next_after_seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    tenant_id = None
    if tenant is not None:
        row = TenantRepository(session).get_by_slug(tenant)
        if row is None:
            raise NotFound(f"tenant '{tenant}' not found")
        tenant_id = row.id
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
def verify(principal: AuditRead, session: SessionDep) -> VerifyOut:
    return VerifyOut(**dataclasses.asdict(audit.verify(session)))
