"""Drift policies: when an adapter's live traffic has moved away from its training data, retrain.

The worker computes the metrics (workers/drift.py) and stores them through `drift_metrics.record`
(metrics.py); then `check` decides, under the policy's row lock so that concurrent checks of one
adapter start at most one job: the latest value of the policy's metric for the version in production
must cross the threshold, on at least `min_samples` prompts, with no drift retrain within the
cooldown. The metric, value and threshold go into the job's `trigger_ref`, hence the lineage.
A policy with `datasets: traffic` retrains on the window's curated traffic instead
(registry/traffic/retrain.py), labelled by its teacher first where it names one.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.orm import Session

from registry.adapters.service import adapters
from registry.aliases.repository import AliasRepository
from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.db import utcnow
from registry.drift.repository import DriftRepository
from registry.drift.schemas import DriftPolicyIn, DriftPolicyOut
from registry.errors import Conflict, NotFound
from registry.models import Adapter, DriftPolicy, Teacher, Tenant
from registry.models.enums import DatasetMode, DriftOutcome
from registry.settings import Settings
from registry.storage import ObjectStore
from registry.tasks import TaskQueue
from registry.teachers.service import teachers
from registry.traffic.retrain import start_traffic_retrain
from registry.training.automatic import Skipped, start_retrain
from registry.training.selection import check_uploaded_names, select_datasets

log = structlog.get_logger(__name__)
MONITOR = "drift-monitor"


@dataclass(frozen=True)
class Decision:
    outcome: str  # ok | triggered | cooldown | insufficient | no_data | skipped
    message: str
    job_id: uuid.UUID | None = None


class DriftPolicyService:
    def put(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        name: str,
        data: DriftPolicyIn,
    ) -> DriftPolicy:
        adapter = adapters.get(session, tenant=tenant, name=name)
        if adapter.archived_at is not None:
            raise Conflict(f"adapter '{adapter.name}' is archived")
        traffic = data.datasets == DatasetMode.TRAFFIC
        if data.dataset_names and traffic:
            check_uploaded_names(session, adapter, data.dataset_names)  # 422 if unknown
        elif data.dataset_names:
            select_datasets(session, adapter, data.datasets, data.dataset_names)  # 422 if unknown
        teacher = teachers.usable(session, name=data.teacher) if data.teacher else None
        repo = DriftRepository(session, tenant.id)
        row = repo.policy(adapter.id, lock=True)
        if row is None:
            row = DriftPolicy(adapter_id=adapter.id, tenant_id=tenant.id, details={})
            repo.add(row)
        row.metric, row.threshold = data.metric, data.resolved_threshold()
        row.window_seconds, row.cooldown_seconds = data.window, data.cooldown
        row.min_samples, row.enabled = data.min_samples, data.enabled
        row.datasets, row.dataset_names = data.datasets, data.dataset_names
        row.teacher_id = teacher.id if teacher else None
        details = {k: v for k, v in (row.details or {}).items() if k != "traffic_dataset"}
        if traffic:
            details["traffic_dataset"] = data.traffic_dataset or f"{adapter.name}-traffic"
        row.details = details
        row.updated_by, row.updated_at = actor.subject, utcnow()
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="drift_policy.set",
            target_type="adapter",
            target_id=str(adapter.id),
            tenant_id=tenant.id,
            details={"adapter": adapter.name, **self.settings_of(row), "teacher": data.teacher},
        )
        return row

    def get(self, session: Session, *, tenant: Tenant, name: str) -> DriftPolicy:
        adapter = adapters.get(session, tenant=tenant, name=name)
        row = DriftRepository(session, tenant.id).policy(adapter.id)
        if row is None:
            raise NotFound(f"adapter '{name}' has no drift policy")
        return row

    def delete(self, session: Session, *, actor: Principal, tenant: Tenant, name: str) -> None:
        row = self.get(session, tenant=tenant, name=name)
        DriftRepository(session, tenant.id).delete(row)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="drift_policy.delete",
            target_type="adapter",
            target_id=str(row.adapter_id),
            tenant_id=tenant.id,
            details={"adapter": name},
        )

    def check(
        self,
        session: Session,
        *,
        tenant: Tenant,
        adapter: Adapter,
        now: dt.datetime,
        settings: Settings,
        queue: TaskQueue,
        store: ObjectStore | None = None,
    ) -> Decision | None:
        """Decide on the freshly stored metrics; None when the adapter has no enabled policy.
        `store`: where traces are, for a policy that retrains on traffic."""
        repo = DriftRepository(session, tenant.id)
        policy = repo.policy(adapter.id, lock=True)
        if policy is None or not policy.enabled:
            return None
        decision = self._decide(session, policy, tenant, adapter, now, settings, queue, store)
        policy.last_checked_at = now
        policy.last_outcome = DriftOutcome(decision.outcome)
        policy.last_message = decision.message[:2000]
        if decision.outcome == "triggered":
            policy.last_triggered_at = now
            policy.last_job_id = decision.job_id
        session.flush()
        log.info(
            "drift.checked",
            tenant=tenant.slug,
            adapter=adapter.name,
            outcome=decision.outcome,
            message=decision.message,
        )
        return decision

    def _decide(
        self,
        session: Session,
        policy: DriftPolicy,
        tenant: Tenant,
        adapter: Adapter,
        now: dt.datetime,
        settings: Settings,
        queue: TaskQueue,
        store: ObjectStore | None,
    ) -> Decision:
        production = AliasRepository(session, tenant.id).get(adapter.id, "production")
        if production is None:
            return Decision("no_data", "no version is in production")
        metric = DriftRepository(session, tenant.id).latest_metric(
            adapter.id, policy.metric, production.version_id
        )
        fresh_after = now - dt.timedelta(seconds=policy.window_seconds)
        if metric is None or metric.window_end <= fresh_after:
            return Decision("no_data", f"no {policy.metric} for the production version this window")
        shown = f"{policy.metric} {metric.value:.4g} (threshold {policy.threshold:g})"
        if metric.sample_size < policy.min_samples:
            return Decision(
                "insufficient",
                f"{shown} on {metric.sample_size} prompts; at least {policy.min_samples} needed",
            )
        if metric.value <= policy.threshold:
            return Decision("ok", f"{shown} on {metric.sample_size} prompts")
        cooldown = dt.timedelta(seconds=policy.cooldown_seconds)
        if policy.last_triggered_at is not None and now - policy.last_triggered_at < cooldown:
            return Decision(
                "cooldown",
                f"{shown} crossed, but a drift retrain started at "
                f"{policy.last_triggered_at.isoformat()} (cooldown {policy.cooldown_seconds} s)",
            )
        served = metric.details.get("version") or metric.version_id
        reason: dict[str, Any] = {
            "metric": policy.metric,
            "value": metric.value,
            "threshold": policy.threshold,
            "sample_size": metric.sample_size,
            "min_samples": policy.min_samples,
            "window_start": metric.window_start.isoformat(),
            "window_end": metric.window_end.isoformat(),
            "drift_metric_id": metric.id,
            "served_version": served if isinstance(served, int) else str(served),
        }
        ref = {"drift": reason, "datasets": policy.datasets}
        if policy.datasets == DatasetMode.TRAFFIC:
            return self._on_traffic(
                session, policy, tenant, adapter, now, settings, queue, store, ref, shown
            )
        try:
            job = start_retrain(
                session,
                tenant=tenant,
                adapter=adapter,
                mode=policy.datasets,  # type: ignore[arg-type]
                names=policy.dataset_names,
                trigger="drift",
                trigger_ref=ref,
                settings=settings,
                queue=queue,
                actor=Principal.local_operator(MONITOR),
            )
        except Skipped as exc:
            return Decision("skipped", f"{shown} crossed; retrain not started: {exc}")
        audit.record(
            session,
            actor=Principal.local_operator(MONITOR),
            action="drift_policy.triggered",
            target_type="adapter",
            target_id=str(adapter.id),
            tenant_id=tenant.id,
            details={"adapter": adapter.name, "job_id": str(job.id), **reason},
        )
        return Decision("triggered", f"{shown} crossed: training job {job.id}", job.id)

    def _on_traffic(
        self,
        session: Session,
        policy: DriftPolicy,
        tenant: Tenant,
        adapter: Adapter,
        now: dt.datetime,
        settings: Settings,
        queue: TaskQueue,
        store: ObjectStore | None,
        ref: dict[str, Any],
        shown: str,
    ) -> Decision:
        if store is None:
            return Decision("skipped", f"{shown} crossed; no object store to read traces from")
        teacher = session.get(Teacher, policy.teacher_id) if policy.teacher_id else None
        actor = Principal.local_operator(MONITOR)
        try:
            started = start_traffic_retrain(
                session,
                tenant=tenant,
                adapter=adapter,
                policy=policy,
                since=now - dt.timedelta(seconds=policy.window_seconds),
                until=now,
                teacher=teacher.name if teacher else None,
                trigger_ref=ref,
                settings=settings,
                queue=queue,
                store=store,
                actor=actor,
            )
        except Skipped as exc:
            return Decision("skipped", f"{shown} crossed; retrain not started: {exc}")
        job_id = started.job.id if started.job else None
        audit.record(
            session,
            actor=actor,
            action="drift_policy.triggered",
            target_type="adapter",
            target_id=str(adapter.id),
            tenant_id=tenant.id,
            details={
                "adapter": adapter.name,
                "job_id": str(job_id) if job_id else None,
                "labelling_job_id": str(started.labelling.id) if started.labelling else None,
                **ref["drift"],
                "traffic": started.traffic,
            },
        )
        return Decision("triggered", f"{shown} crossed: {started.message}", job_id)

    @staticmethod
    def settings_of(row: DriftPolicy) -> dict[str, object]:
        return {
            "metric": row.metric,
            "threshold": row.threshold,
            "window_seconds": row.window_seconds,
            "min_samples": row.min_samples,
            "cooldown_seconds": row.cooldown_seconds,
            "enabled": row.enabled,
            "datasets": row.datasets,
            "dataset_names": row.dataset_names,
            "traffic_dataset": (row.details or {}).get("traffic_dataset"),
        }

    @staticmethod
    def out(
        session: Session, row: DriftPolicy, tenant_slug: str, adapter_name: str
    ) -> DriftPolicyOut:
        teacher = session.get(Teacher, row.teacher_id) if row.teacher_id else None
        return DriftPolicyOut(
            tenant=tenant_slug,
            adapter=adapter_name,
            metric=row.metric,
            threshold=row.threshold,
            window=row.window_seconds,
            min_samples=row.min_samples,
            cooldown=row.cooldown_seconds,
            enabled=row.enabled,
            datasets=row.datasets,
            dataset_names=row.dataset_names,
            teacher=teacher.name if teacher else None,
            traffic_dataset=(row.details or {}).get("traffic_dataset"),
            last_checked_at=row.last_checked_at,
            last_outcome=row.last_outcome,
            last_message=row.last_message,
            last_triggered_at=row.last_triggered_at,
            last_job_id=str(row.last_job_id) if row.last_job_id else None,
            updated_by=row.updated_by,
            updated_at=row.updated_at,
        )


drift_policies = DriftPolicyService()
