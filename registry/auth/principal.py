from __future__ import annotations

import uuid
from dataclasses import dataclass

from registry.auth.scopes import ALL_SCOPES, Role


@dataclass(frozen=True)
class Principal:
    """Who is calling: an authenticated client, or the local operator at the CLI."""

    subject: str  # client_id, or "cli:<user>" for local administration
    role: Role
    scopes: frozenset[str]
    tenant_id: uuid.UUID | None = None

    @classmethod
    def local_operator(cls, name: str = "cli") -> Principal:
        return cls(subject=name, role=Role.OPS, scopes=ALL_SCOPES)

    def owns(self, tenant_id: uuid.UUID) -> bool:
        """Whether this caller may see the tenant's data at all (scope checks come on top)."""
        return self.role is not Role.TENANT or self.tenant_id == tenant_id
