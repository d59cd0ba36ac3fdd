"""Per-adapter capture settings: what the gateway keeps of an adapter's traffic, and how long.

No row means the platform's defaults (prompts only, `LORAPLEX_TRAFFIC_SAMPLE_RATE`, redaction on,
`LORAPLEX_TRAFFIC_RETENTION_SECONDS`); GET answers them with `configured: false`. A tenant that
opted out of traffic logging (`tenants.traffic_logging`) has nothing captured whatever is set here.
"""

from __future__ import annotations

import structlog
from sqlalchemy.orm import Session

from registry.adapters.service import adapters
from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.db import utcnow
from registry.errors import Conflict, NotFound
from registry.models import Adapter, Tenant, TrafficCapture
from registry.models.enums import CaptureMode
from registry.settings import Settings
from registry.traffic.capture_schemas import CaptureIn, CaptureOut
from registry.traffic.redaction import Redactor
from registry.traffic.repository import TrafficRepository

log = structlog.get_logger(__name__)


def redactor_of(capture: TrafficCapture | None) -> Redactor:
    """What the registry redacts for an adapter before storing its traffic (prompts posted by
    a tenant's own stack, feedback): its capture settings, or redaction on by default."""
    if capture is None:
        return Redactor.build([])
    return Redactor.build(capture.redact_patterns or [], enabled=capture.redact)


class CaptureService:
    def put(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        name: str,
        data: CaptureIn,
        settings: Settings,
    ) -> CaptureOut:
        adapter = adapters.get(session, tenant=tenant, name=name)
        if adapter.archived_at is not None:
            raise Conflict(f"adapter '{adapter.name}' is archived; it serves no traffic")
        repo = TrafficRepository(session, tenant.id)
        row = repo.capture(adapter.id, lock=True)
        if row is None:
            row = TrafficCapture(adapter_id=adapter.id, tenant_id=tenant.id)
            repo.add(row)
        before_redact = row.redact if row.redact is not None else True
        row.mode, row.sample_rate, row.redact = data.mode, data.sample_rate, data.redact
        row.retention_seconds = data.retention or settings.traffic_retention_seconds
        row.redact_patterns = data.redact_patterns
        row.updated_by, row.updated_at = actor.subject, utcnow()
        session.flush()
        out = self.out(row, tenant=tenant, adapter=adapter, settings=settings)
        audit.record(
            session,
            actor=actor,
            action="traffic_capture.set",
            target_type="adapter",
            target_id=str(adapter.id),
            tenant_id=tenant.id,
            details={
                "adapter": adapter.name,
                "mode": row.mode.value,
                "sample_rate": row.sample_rate,
                "retention_seconds": row.retention_seconds,
                "redact": row.redact,
                "redact_patterns": [p["name"] for p in row.redact_patterns],
            },
        )
        if before_redact and not row.redact:
            log.warning(
                "traffic_capture.redaction_off",
                tenant=tenant.slug,
                adapter=adapter.name,
                actor=actor.subject,
            )
        return out

    def get(self, session: Session, *, tenant: Tenant, name: str, settings: Settings) -> CaptureOut:
        adapter = adapters.get(session, tenant=tenant, name=name)
        row = TrafficRepository(session, tenant.id).capture(adapter.id)
        return self.out(row, tenant=tenant, adapter=adapter, settings=settings)

    def delete(self, session: Session, *, actor: Principal, tenant: Tenant, name: str) -> None:
        """Back to the platform's defaults. Traces already captured stay (erase them apart)."""
        adapter = adapters.get(session, tenant=tenant, name=name)
        repo = TrafficRepository(session, tenant.id)
        row = repo.capture(adapter.id, lock=True)
        if row is None:
            raise NotFound(f"adapter '{name}' has no capture settings; it uses the defaults")
        repo.delete(row)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="traffic_capture.delete",
            target_type="adapter",
            target_id=str(adapter.id),
            tenant_id=tenant.id,
            details={"adapter": adapter.name},
        )

    @staticmethod
    def out(
        row: TrafficCapture | None, *, tenant: Tenant, adapter: Adapter, settings: Settings
    ) -> CaptureOut:
        if row is None:
            retention = settings.traffic_retention_seconds
            return CaptureOut(
                tenant=tenant.slug,
                adapter=adapter.name,
                configured=False,
                mode=CaptureMode.PROMPTS,
                sample_rate=None,
                effective_sample_rate=settings.traffic_sample_rate,
                retention=retention,
                retention_seconds=retention,
                redact=True,
                redact_patterns=[],
                tenant_traffic_logging=tenant.traffic_logging,
                updated_by=None,
                updated_at=None,
            )
        rate = row.sample_rate if row.sample_rate is not None else settings.traffic_sample_rate
        return CaptureOut(
            tenant=tenant.slug,
            adapter=adapter.name,
            configured=True,
            mode=row.mode,
            sample_rate=row.sample_rate,
            effective_sample_rate=rate,
            retention=row.retention_seconds,
            retention_seconds=row.retention_seconds,
            redact=row.redact,
            redact_patterns=list(row.redact_patterns),
            tenant_traffic_logging=tenant.traffic_logging,
            updated_by=row.updated_by,
            updated_at=row.updated_at,
        )


capture_settings = CaptureService()
