"""API clients: creation (secret shown once, stored hashed) and revocation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

from sqlalchemy.orm import Session

from registry.audit.service import audit
from registry.auth import scopes as sc
from registry.auth.principal import Principal
from registry.auth.repository import ClientRepository
from registry.db import utcnow
from registry.errors import NotFound, Unprocessable
from registry.models import OAuthClient, Tenant


def hash_secret(secret: str) -> str:
    # Secrets are 256-bit random tokens, not passwords: a fast hash is the right tool
    # (a slow KDF would only cost every token request without adding protection).
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_hash)


class ClientService:
    def create(
        self,
        session: Session,
        *,
        actor: Principal,
        role: sc.Role,
        tenant: Tenant | None = None,
        scopes: frozenset[str] | None = None,
        name: str = "",
    ) -> tuple[OAuthClient, str]:
        if (role is sc.Role.TENANT) != (tenant is not None):
            raise Unprocessable("a tenant client needs a tenant; ops and auditor clients have none")
        allowed = sc.ROLE_SCOPES[role]
        granted = allowed if scopes is None else scopes
        if not granted or not granted <= allowed:
            raise Unprocessable(
                f"scopes must be a non-empty subset of {sc.render(allowed)} for role {role.value}"
            )
        secret = secrets.token_urlsafe(32)
        client = OAuthClient(
            client_id=f"lpx_{secrets.token_hex(10)}",
            secret_hash=hash_secret(secret),
            role=role.value,
            tenant_id=tenant.id if tenant else None,
            scopes=sc.render(granted),
            name=name,
            created_by=actor.subject,
        )
        ClientRepository(session).add(client)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="client.create",
            target_type="client",
            target_id=client.client_id,
            tenant_id=client.tenant_id,
            details={"role": role.value, "scopes": client.scopes, "name": name},
        )
        return client, secret

    def list_for_tenant(self, session: Session, *, tenant: Tenant) -> Sequence[OAuthClient]:
        return ClientRepository(session).list_for_tenant(tenant.id)

    def revoke(
        self, session: Session, *, actor: Principal, tenant: Tenant, client_id: str
    ) -> OAuthClient:
        client = ClientRepository(session).get_for_tenant(tenant.id, client_id)
        if client is None:
            raise NotFound(f"client '{client_id}' not found")
        if client.revoked_at is None:
            client.revoked_at = utcnow()
            audit.record(
                session,
                actor=actor,
                action="client.revoke",
                target_type="client",
                target_id=client_id,
                tenant_id=tenant.id,
            )
        session.flush()
        return client


clients = ClientService()
