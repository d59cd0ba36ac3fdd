"""Suites pinned to an adapter: every version of the adapter is scored on each of them.

A pin names one exact suite version of the adapter's own tenant; the set is replaced whole,
in one transaction, under the adapter's row lock (so two replacements never interleave).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from registry.adapters.service import adapters
from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.errors import NotFound
from registry.models import Adapter, AdapterEvalSuite, EvalSuite, Tenant
from registry.suites.pin_schemas import SuiteRef


def pinned_suites(session: Session, adapter: Adapter) -> list[EvalSuite]:
    """The suites pinned to `adapter`, in position order (for the evaluation workers)."""
    stmt = (
        select(EvalSuite)
        .join(AdapterEvalSuite, AdapterEvalSuite.suite_id == EvalSuite.id)
        .where(
            AdapterEvalSuite.adapter_id == adapter.id,
            # Pins are written for the adapter's own tenant only; the filter keeps it so.
            EvalSuite.tenant_id == adapter.tenant_id,
        )
        .order_by(AdapterEvalSuite.position)
    )
    return list(session.execute(stmt).scalars().all())


def find_tenant_suite(session: Session, tenant: Tenant, ref: SuiteRef) -> EvalSuite:
    """`ref` among this tenant's suites (never another tenant's, nor a platform suite)."""
    stmt = select(EvalSuite).where(EvalSuite.tenant_id == tenant.id, EvalSuite.name == ref.name)
    if ref.version is not None:
        stmt = stmt.where(EvalSuite.version == ref.version)
    found = session.execute(stmt.order_by(EvalSuite.version.desc()).limit(1)).scalar_one_or_none()
    if found is None:
        if ref.version is None:
            raise NotFound(
                f"eval suite '{ref.name}' not found; upload it with "
                f"POST /v1/tenants/{tenant.slug}/eval-suites"
            )
        raise NotFound(f"version {ref.version} of eval suite '{ref.name}' not found")
    return found


def _summary(suites: Sequence[EvalSuite]) -> list[dict[str, Any]]:
    return [{"id": str(s.id), "name": s.name, "version": s.version} for s in suites]


class SuitePinService:
    def get(self, session: Session, *, tenant: Tenant, adapter_name: str) -> list[EvalSuite]:
        return pinned_suites(session, adapters.get(session, tenant=tenant, name=adapter_name))

    def set(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        adapter_name: str,
        refs: Sequence[SuiteRef],
    ) -> list[EvalSuite]:
        """Replace the pinned set with `refs` (resolved now: null versions become the latest)."""
        adapter = adapters.get(session, tenant=tenant, name=adapter_name, lock=True)
        chosen = [find_tenant_suite(session, tenant, ref) for ref in refs]
        before = pinned_suites(session, adapter)
        session.execute(delete(AdapterEvalSuite).where(AdapterEvalSuite.adapter_id == adapter.id))
        session.add_all(
            AdapterEvalSuite(
                adapter_id=adapter.id,
                suite_id=suite.id,
                tenant_id=tenant.id,
                position=position,
                created_by=actor.subject,
            )
            for position, suite in enumerate(chosen)
        )
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="adapter.eval_suites.set",
            target_type="adapter",
            target_id=adapter.name,
            tenant_id=tenant.id,
            details={"before": _summary(before), "after": _summary(chosen)},
        )
        return chosen


suite_pins = SuitePinService()
