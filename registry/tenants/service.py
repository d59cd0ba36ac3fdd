from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.db import utcnow
from registry.errors import Conflict
from registry.models import Tenant
from registry.settings import Settings
from registry.tenants.repository import TenantRepository
from registry.tenants.schemas import TenantCreate, TenantUpdate


class TenantService:
    def create(
        self, session: Session, *, actor: Principal, data: TenantCreate, settings: Settings
    ) -> Tenant:
        repo = TenantRepository(session)
        if repo.get_by_slug(data.slug) is not None:
            raise Conflict(f"tenant '{data.slug}' already exists")
        tenant = Tenant(
            slug=data.slug,
            display_name=data.display_name,
            quota_dataset_bytes=data.quota_dataset_bytes or settings.default_quota_dataset_bytes,
            quota_adapters=data.quota_adapters or settings.default_quota_adapters,
        )
        repo.add(tenant)
        try:
            with session.begin_nested():
                session.flush()
        except IntegrityError as exc:  # a concurrent create won the race
            raise Conflict(f"tenant '{data.slug}' already exists") from exc
        audit.record(
            session,
            actor=actor,
            action="tenant.create",
            target_type="tenant",
            target_id=tenant.slug,
            tenant_id=tenant.id,
            details=data.model_dump(exclude_none=True),
        )
        return tenant

    def list(
        self, session: Session, *, principal: Principal, limit: int, offset: int
    ) -> Sequence[Tenant]:
        return TenantRepository(session).list(visible_to=principal, limit=limit, offset=offset)

    def set_traffic_logging(
        self, session: Session, *, actor: Principal, tenant: Tenant, enabled: bool
    ) -> Tenant:
        if tenant.traffic_logging != enabled:
            tenant.traffic_logging = enabled
            audit.record(
                session,
                actor=actor,
                action="tenant.traffic_logging",
                target_type="tenant",
                target_id=tenant.slug,
                tenant_id=tenant.id,
                details={"enabled": enabled},
            )
            session.flush()
        return tenant

    def update(
        self, session: Session, *, actor: Principal, tenant: Tenant, data: TenantUpdate
    ) -> Tenant:
        changes = data.model_dump(exclude_none=True)
        for field, value in changes.items():
            setattr(tenant, field, value)
        if changes:
            audit.record(
                session,
                actor=actor,
                action="tenant.update",
                target_type="tenant",
                target_id=tenant.slug,
                tenant_id=tenant.id,
                details=changes,
            )
        session.flush()
        return tenant

    def set_disabled(
        self, session: Session, *, actor: Principal, tenant: Tenant, disabled: bool
    ) -> Tenant:
        if tenant.disabled != disabled:
            tenant.disabled_at = utcnow() if disabled else None
            audit.record(
                session,
                actor=actor,
                action="tenant.disable" if disabled else "tenant.enable",
                target_type="tenant",
                target_id=tenant.slug,
                tenant_id=tenant.id,
            )
        session.flush()
        return tenant


tenants = TenantService()
