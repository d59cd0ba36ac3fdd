from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.models import OAuthClient, Tenant


class ClientRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get_active(self, client_id: str) -> tuple[OAuthClient, Tenant | None] | None:
        """The client and its tenant, or None if unknown or revoked."""
        stmt = (
            select(OAuthClient, Tenant)
            .outerjoin(Tenant, Tenant.id == OAuthClient.tenant_id)
            .where(OAuthClient.client_id == client_id, OAuthClient.revoked_at.is_(None))
        )
        row = self.session.execute(stmt).first()
        return (row[0], row[1]) if row else None

    def list_for_tenant(self, tenant_id: uuid.UUID) -> Sequence[OAuthClient]:
        stmt = select(OAuthClient).where(OAuthClient.tenant_id == tenant_id)
        return self.session.execute(stmt.order_by(OAuthClient.created_at)).scalars().all()

    def get_for_tenant(self, tenant_id: uuid.UUID, client_id: str) -> OAuthClient | None:
        stmt = select(OAuthClient).where(
            OAuthClient.tenant_id == tenant_id, OAuthClient.client_id == client_id
        )
        return self.session.execute(stmt).scalar_one_or_none()

    def add(self, client: OAuthClient) -> None:
        self.session.add(client)
