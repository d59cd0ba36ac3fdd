"""Eval scores per version (and base-model baselines), and comparisons between them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.orm import Session

from registry.adapters.resolve import parse_version
from registry.adapters.versions import versions
from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.datasets.repository import DatasetRepository
from registry.errors import NotFound
from registry.evals.repository import EvalRepository
from registry.evals.schemas import Comparison, EvalCreate, EvalOut, MetricDelta
from registry.models import Adapter, Eval, Tenant

BASE = "base"


class EvalService:
    def record(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        adapter: Adapter,
        number: int,
        data: EvalCreate,
        suite_id: uuid.UUID | None = None,
    ) -> Eval:
        """`suite_id`: the eval-suite version scored (workers only; the API records scores of
        the client's own suites, without one)."""
        version = versions.get(session, adapter=adapter, number=number)
        dataset_id = data.dataset_id
        if dataset_id is not None and DatasetRepository(session, tenant.id).get(dataset_id) is None:
            raise NotFound(f"dataset '{data.dataset_id}' not found")
        row = Eval(
            tenant_id=tenant.id,
            adapter_id=adapter.id,
            version_id=version.id,
            subject=data.subject,
            suite=data.suite,
            metrics=data.metrics,
            dataset_id=data.dataset_id,
            suite_id=suite_id,
            details=data.details,
            created_by=actor.subject,
        )
        EvalRepository(session, tenant.id).add(row)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="eval.create",
            target_type="eval",
            target_id=str(row.id),
            tenant_id=tenant.id,
            details={
                "adapter": adapter.name,
                "version": number,
                "suite": data.suite,
                "subject": data.subject,
                "suite_id": str(suite_id) if suite_id else None,
                "metrics": data.metrics,
            },
        )
        return row

    def list(self, session: Session, *, adapter: Adapter, number: int) -> Sequence[Eval]:
        version = versions.get(session, adapter=adapter, number=number)
        return EvalRepository(session, adapter.tenant_id).for_version(version.id)

    def compare(self, session: Session, *, adapter: Adapter, a: int, b: str) -> Comparison:
        """Metric by metric, latest score per (suite, metric). `b` is a version or 'base': the
        base model as scored on version `a`'s eval set."""
        left = self._latest(self.list(session, adapter=adapter, number=a), "version")
        if b == BASE:
            right = self._latest(self.list(session, adapter=adapter, number=a), "base_model")
            label = "base_model"
        else:
            number = parse_version(b)
            right = self._latest(self.list(session, adapter=adapter, number=number), "version")
            label = f"v{number}"
        rows = []
        for suite, metric in sorted(set(left) | set(right)):
            x, y = left.get((suite, metric)), right.get((suite, metric))
            delta = y - x if x is not None and y is not None else None
            rows.append(MetricDelta(suite=suite, metric=metric, a=x, b=y, delta=delta))
        return Comparison(a=f"v{a}", b=label, metrics=rows)

    @staticmethod
    def to_out(row: Eval, number: int) -> EvalOut:
        return EvalOut(
            id=row.id,
            version=number,
            suite=row.suite,
            subject=row.subject,
            metrics=row.metrics,
            dataset_id=row.dataset_id,
            suite_id=row.suite_id,
            details=row.details,
            created_by=row.created_by,
            created_at=row.created_at,
        )

    @staticmethod
    def _latest(rows: Sequence[Eval], subject: str) -> dict[tuple[str, str], float]:
        out: dict[tuple[str, str], float] = {}
        for row in rows:  # ordered by created_at: later scores win
            if row.subject == subject:
                out.update({(row.suite, k): v for k, v in row.metrics.items()})
        return out


evals = EvalService()
