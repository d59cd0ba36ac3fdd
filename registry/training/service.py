"""Training jobs as the API sees them: create (row + queued version, task sent after commit),
read with progress and events, cancel, pause and resume."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy.orm import Session

from registry.adapters.schemas import TrainingConfig
from registry.adapters.service import adapters
from registry.adapters.versions import NewVersion, versions
from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.base_models.repository import BaseModelRepository
from registry.datasets.repository import DatasetRepository
from registry.db import after_commit, utcnow
from registry.errors import Conflict, NotFound, Unprocessable, require
from registry.models import BaseModel, Dataset, Tenant, TrainingJob, TrainingJobEvent
from registry.models.enums import JobStatus
from registry.settings import Settings
from registry.storage import ObjectStore
from registry.tasks import TaskQueue
from registry.training.queueing import priority_for, wake
from registry.training.repository import PlatformJobRepository, TrainingJobRepository
from registry.training.schemas import FINISHED, JobEventOut, TrainingJobCreate, TrainingJobOut

log = structlog.get_logger(__name__)


def add_event(
    session: Session, job: TrainingJob, kind: str, message: str = "", **data: Any
) -> None:
    TrainingJobRepository(session, job.tenant_id).add_event(
        TrainingJobEvent(
            job_id=job.id, tenant_id=job.tenant_id, kind=kind, message=message, data=data
        )
    )


def _merge_config(base: dict[str, Any], overrides: dict[str, Any]) -> TrainingConfig:
    try:
        return TrainingConfig.model_validate({**base, **overrides})
    except ValidationError as exc:
        problems = [
            f"hyperparameters.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors()
        ]
        raise Unprocessable(problems[0], problems=problems) from exc


def _check_tools(base: BaseModel, datasets: builtins.list[Dataset]) -> None:
    """Rows with `tools` are rendered through the base model's template, which must show them."""
    with_tools = [d for d in datasets if d.tool_rows > 0]
    if with_tools and not base.chat_template_tools:
        names = ", ".join(f"'{d.name}' v{d.version} ({d.tool_rows} rows)" for d in with_tools)
        raise Unprocessable(
            f"base model '{base.name}''s chat template cannot render tools, and dataset(s) "
            f"{names} have rows with `tools`: register a base model whose template renders "
            "`tools` and `tool_calls` (Hermes style, e.g. Qwen2.5 or loraplex's tiny dev "
            "model) or upload rows without tools"
        )


def queue_job(
    session: Session,
    *,
    job: TrainingJob,
    actor: Principal,
    queue: TaskQueue,
    event: str,
    action: str,
    details: dict[str, Any],
    settings: Settings | None = None,
) -> TrainingJob:
    """Store a new job with its `queued` event and audit event, at its trigger's priority;
    a doorbell rings after commit (a lost one is rung again by the reaper)."""
    job.priority = priority_for(job.trigger, settings)
    TrainingJobRepository(session, job.tenant_id).add(job)
    session.flush()
    add_event(session, job, "queued", event)
    audit.record(
        session,
        actor=actor,
        action=action,
        target_type="training_job",
        target_id=str(job.id),
        tenant_id=job.tenant_id,
        details=details,
    )
    wake(session, queue=queue, settings=settings, job_ids=[job.id])
    return job


class TrainingService:
    def create(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        data: TrainingJobCreate,
        settings: Settings,
        queue: TaskQueue,
        trigger: str = "manual",
        trigger_ref: dict[str, Any] | None = None,
    ) -> TrainingJob:
        adapter = adapters.get(session, tenant=tenant, name=data.adapter)
        if adapter.archived_at is not None:
            raise Conflict(f"adapter '{adapter.name}' is archived")
        if tenant.disabled:
            raise Conflict(f"tenant '{tenant.slug}' is disabled")
        if len(set(data.dataset_ids)) != len(data.dataset_ids):
            raise Unprocessable("dataset_ids has duplicates")
        train = [self._dataset(session, tenant, i) for i in data.dataset_ids]
        validation = (
            self._dataset(session, tenant, data.validation_dataset_id)
            if data.validation_dataset_id
            else None
        )
        if validation is not None and validation.id in data.dataset_ids:
            raise Unprocessable("the validation dataset is also a training dataset")
        rows = sum(d.rows for d in train)
        if rows < (1 if validation else 2):
            raise Unprocessable(
                f"the training datasets have {rows} row(s); at least 2 are needed to hold one out"
            )
        config = _merge_config(adapter.training_config, data.hyperparameters)
        base = require(BaseModelRepository(session).get(adapter.base_model_id), "base model")
        rank_from = "hyperparameters.rank" if "rank" in data.hyperparameters else None
        adapters.check_config(base, config, rank_from=rank_from or "the adapter's training.rank")
        _check_tools(base, train + ([validation] if validation else []))

        job_id = uuid.uuid4()
        links = [(d, "train") for d in train] + ([(validation, "validation")] if validation else [])
        version = versions.allocate(
            session,
            adapter=adapter,
            new=NewVersion(
                status="queued",
                trigger=trigger,
                created_by=actor.subject,
                training_config=config.model_dump(),
                trigger_ref=trigger_ref or {},
                job_id=str(job_id),
                parent=versions.default_parent(session, adapter=adapter),
                datasets=links,
            ),
        )
        job = TrainingJob(
            id=job_id,
            tenant_id=tenant.id,
            adapter_id=adapter.id,
            version_id=version.id,
            status="queued",
            trigger=trigger,
            trigger_ref=trigger_ref or {},
            config=config.model_dump(),
            dataset_ids=[str(d.id) for d in train],
            validation_dataset_id=validation.id if validation else None,
            progress={},
            result={},
            max_attempts=settings.job_max_attempts,
            created_by=actor.subject,
        )
        return queue_job(
            session,
            job=job,
            actor=actor,
            queue=queue,
            event=f"version {version.version} queued ({trigger})",
            action="training_job.create",
            settings=settings,
            details={
                "adapter": adapter.name,
                "version": version.version,
                "trigger": trigger,
                "datasets": job.dataset_ids,
                "config_hash": version.config_hash,
            },
        )

    def get(self, session: Session, *, tenant: Tenant, job_id: uuid.UUID) -> TrainingJob:
        job = TrainingJobRepository(session, tenant.id).get(job_id)
        if job is None:
            raise NotFound(f"training job '{job_id}' not found")
        return job

    def list(
        self,
        session: Session,
        *,
        tenant: Tenant,
        status: str | None,
        adapter: str | None,
        limit: int,
    ) -> Sequence[TrainingJob]:
        adapter_id = adapters.get(session, tenant=tenant, name=adapter).id if adapter else None
        return TrainingJobRepository(session, tenant.id).list(
            status=status, adapter_id=adapter_id, limit=limit
        )

    def list_all(
        self, session: Session, *, status: str | None, tenant: Tenant | None, limit: int
    ) -> Sequence[TrainingJob]:
        return PlatformJobRepository(session).list(
            status=status, tenant_id=tenant.id if tenant else None, limit=limit
        )

    def cancel(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        job_id: uuid.UUID,
        store: ObjectStore | None = None,
        reason: str = "",
    ) -> TrainingJob:
        """Queued or paused: cancelled at once (a paused job's saved state and checkpoints are
        deleted from `store` after the commit); running: stopped at its next step. `reason`
        (the console asks for one) goes into the job's event and the audit event."""
        job = self._locked(session, tenant, job_id)
        by = f"{actor.subject}: {reason}" if reason else actor.subject
        if job.status in FINISHED:
            raise Conflict(f"training job '{job_id}' is already {job.status}")
        if job.status in (JobStatus.QUEUED, JobStatus.PAUSED):
            from registry.training.lifecycle import artifact_prefix, lifecycle

            if job.status == JobStatus.PAUSED and store is not None:
                prefix = artifact_prefix(job)
                after_commit(session, lambda: _delete_prefix(store, prefix))
            lifecycle.finish_cancelled(session, job=job, by=by)
        elif not job.cancel_requested:
            job.cancel_requested = True
            add_event(session, job, "cancel_requested", f"by {by}")
        session.flush()
        self._audit(
            session, actor, job, "training_job.cancel", **({"reason": reason} if reason else {})
        )
        return job

    def pause(
        self, session: Session, *, actor: Principal, tenant: Tenant, job_id: uuid.UUID
    ) -> TrainingJob:
        """Queued: paused at once. Running: the worker stops after its current step, stores
        the run's state and marks the job paused (`pause_requested` until then). Paused: as is."""
        job = self._locked(session, tenant, job_id)
        if job.status in FINISHED:
            raise Conflict(f"training job '{job_id}' is already {job.status}: nothing to pause")
        if job.status == JobStatus.QUEUED:
            job.status = JobStatus.PAUSED
            add_event(session, job, "paused", f"by {actor.subject}, before its next attempt")
        elif job.status == JobStatus.RUNNING and not job.pause_requested:
            job.pause_requested = True
            add_event(session, job, "pause_requested", f"by {actor.subject}")
        session.flush()
        self._audit(session, actor, job, "training_job.pause")
        return job

    def resume(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        job_id: uuid.UUID,
        queue: TaskQueue,
        settings: Settings | None = None,
    ) -> TrainingJob:
        """A paused job is queued again; its next attempt continues from the saved state."""
        job = self._locked(session, tenant, job_id)
        if job.status != JobStatus.PAUSED:
            raise Conflict(f"training job '{job_id}' is not paused (it is {job.status})")
        job.status, job.pause_requested, job.updated_at = JobStatus.QUEUED, False, utcnow()
        add_event(session, job, "resumed", f"by {actor.subject}")
        session.flush()
        self._audit(session, actor, job, "training_job.resume")
        wake(session, queue=queue, settings=settings, job_ids=[job.id])
        return job

    def _locked(self, session: Session, tenant: Tenant, job_id: uuid.UUID) -> TrainingJob:
        self.get(session, tenant=tenant, job_id=job_id)
        return require(TrainingJobRepository(session, tenant.id).get(job_id, lock=True), "job")

    @staticmethod
    def _audit(
        session: Session, actor: Principal, job: TrainingJob, action: str, **details: Any
    ) -> None:
        audit.record(
            session,
            actor=actor,
            action=action,
            target_type="training_job",
            target_id=str(job.id),
            tenant_id=job.tenant_id,
            details={"status": job.status, **details},
        )

    def to_out(
        self, session: Session, rows: Sequence[TrainingJob], *, with_events: bool = False
    ) -> builtins.list[TrainingJobOut]:
        platform = PlatformJobRepository(session)
        labels = platform.labels(rows)
        events: dict[uuid.UUID, builtins.list[JobEventOut]] = {r.id: [] for r in rows}
        if with_events and rows:
            for e in platform.events([r.id for r in rows]):
                events[e.job_id].append(
                    JobEventOut(
                        kind=e.kind, message=e.message, data=e.data, occurred_at=e.occurred_at
                    )
                )
        out = []
        for job in rows:
            slug, name, number = labels[job.id]
            out.append(
                TrainingJobOut(
                    id=job.id,
                    tenant=slug,
                    adapter=name,
                    version=number,
                    kind=job.kind,
                    status=job.status,  # type: ignore[arg-type]
                    trigger=job.trigger,
                    trigger_ref=job.trigger_ref,
                    config=job.config,
                    dataset_ids=job.dataset_ids,
                    validation_dataset_id=job.validation_dataset_id,
                    progress=job.progress,
                    result=job.result,
                    priority=job.priority,
                    not_before=job.not_before,
                    attempts=job.attempts,
                    max_attempts=job.max_attempts,
                    cancel_requested=job.cancel_requested,
                    pause_requested=job.pause_requested,
                    error=job.error,
                    created_by=job.created_by,
                    created_at=job.created_at,
                    started_at=job.started_at,
                    finished_at=job.finished_at,
                    events=events[job.id] if with_events else None,
                )
            )
        return out

    @staticmethod
    def _dataset(session: Session, tenant: Tenant, dataset_id: uuid.UUID) -> Dataset:
        found = DatasetRepository(session, tenant.id).get(dataset_id)
        if found is None:
            raise NotFound(f"dataset '{dataset_id}' not found")
        return found


def _delete_prefix(store: ObjectStore, prefix: str) -> None:
    """Best effort after the commit: an object left behind is garbage, not a broken job."""
    try:
        for key in list(store.list_keys(prefix + "/")):
            store.delete(key)
    except Exception:
        log.warning("training.state_not_deleted", prefix=prefix, exc_info=True)


training = TrainingService()
