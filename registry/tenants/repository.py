from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from registry.auth.principal import Principal
from registry.auth.scopes import Role
from registry.models import Tenant


class TenantRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get_by_slug(self, slug: str, *, lock: bool = False) -> Tenant | None:
        stmt = select(Tenant).where(Tenant.slug == slug)
        if lock:
            stmt = stmt.with_for_update()
        return self.session.execute(stmt).scalar_one_or_none()

    def lock(self, tenant: Tenant) -> Tenant:
        stmt = select(Tenant).where(Tenant.id == tenant.id).with_for_update()
        return self.session.execute(stmt).scalar_one()

    def _visible_to(self, principal: Principal) -> Select[Tenant]:
        """The tenants a caller may see (as `Principal.owns`), so paging sees nothing else."""
        stmt = select(Tenant)
        if principal.role is Role.TENANT:
            stmt = stmt.where(Tenant.id == principal.tenant_id)
        return stmt

    def list(self, *, visible_to: Principal, limit: int, offset: int) -> Sequence[Tenant]:
        stmt = self._visible_to(visible_to).order_by(Tenant.slug).limit(limit).offset(offset)
        return self.session.execute(stmt).scalars().all()

    def add(self, tenant: Tenant) -> None:
        self.session.add(tenant)
