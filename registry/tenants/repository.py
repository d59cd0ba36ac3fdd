from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

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

    def list(self, *, limit: int, offset: int) -> Sequence[Tenant]:
        stmt = select(Tenant).order_by(Tenant.slug).limit(limit).offset(offset)
        return self.session.execute(stmt).scalars().all()

    def add(self, tenant: Tenant) -> None:
        self.session.add(tenant)
