"""All tables, imported here so Alembic and the app see one metadata."""

from registry.db import Base
from registry.models.audit_event import GENESIS_HASH, AuditChainHead, AuditEvent
from registry.models.dataset import Dataset
from registry.models.oauth_client import OAuthClient
from registry.models.tenant import Tenant

__all__ = [
    "GENESIS_HASH",
    "AuditChainHead",
    "AuditEvent",
    "Base",
    "Dataset",
    "OAuthClient",
    "Tenant",
]
