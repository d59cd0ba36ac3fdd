"""Labelling jobs as the API sees them: create (row first, task sent after commit), read,
cancel; and the state changes a worker and the reaper make (claim, finish, fail stale)."""

from __future__ import annotations

import builtins
import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy.orm import Session

from registry.adapters.service import adapters
from registry.adapters.versions import versions
from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.db import after_commit, utcnow
from registry.errors import Conflict, NotFound, Unprocessable
from registry.labelling.repository import LabellingJobRepository, PlatformLabellingRepository
from registry.labelling.schemas import LabellingJobOut, LabellingParams
from registry.models import Adapter, LabellingJob, Tenant
from registry.tasks import LABEL, TaskQueue
from registry.teachers.service import teachers

log = structlog.get_logger("loraplex.labelling")
FINISHED = ("succeeded", "failed", "cancelled")


class LabellingService:
    def create(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        adapter: Adapter | str,
        teacher_name: str,
        params: LabellingParams,
        followup: dict[str, Any] | None,
        queue: TaskQueue,
        now: dt.datetime | None = None,
    ) -> LabellingJob:
        """Queue a job labelling `adapter`'s traffic of the window with `teacher_name`. The
        window is fixed now (a job that waits in the queue labels what it was asked to)."""
        if isinstance(adapter, str):
            adapter = adapters.get(session, tenant=tenant, name=adapter)
        if adapter.tenant_id != tenant.id:
            raise NotFound(f"adapter '{adapter.name}' not found")
        if adapter.archived_at is not None:
            raise Conflict(f"adapter '{adapter.name}' is archived")
        if tenant.disabled:
            raise Conflict(f"tenant '{tenant.slug}' is disabled")
        teacher = teachers.usable(session, name=teacher_name)
        version_id = None
        if params.version is not None:
            version_id = str(versions.get(session, adapter=adapter, number=params.version).id)
        repo = LabellingJobRepository(session, tenant.id)
        busy = repo.active_for_adapter(adapter.id)
        if busy is not None:
            raise Conflict(
                f"labelling job '{busy.id}' of adapter '{adapter.name}' is still {busy.status}; "
                "wait for it or cancel it"
            )
        since, until = params.resolve(now or utcnow())
        if since >= until:
            raise Unprocessable("the window is empty: since must be before until")
        stored = {
            "dataset": params.dataset,
            "since": since.isoformat(),
            "until": until.isoformat(),
            "version": params.version,
            "version_id": version_id,
            "max_prompts": params.max_prompts,
            "skip_answered": params.skip_answered,
        }
        job = LabellingJob(
            tenant_id=tenant.id,
            adapter_id=adapter.id,
            teacher_id=teacher.id,
            status="queued",
            params=stored,
            followup=followup,
            progress={},
            counts={},
            created_by=actor.subject,
        )
        repo.add(job)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="labelling_job.create",
            target_type="labelling_job",
            target_id=str(job.id),
            tenant_id=tenant.id,
            details={
                "adapter": adapter.name,
                "teacher": teacher.name,
                "model": teacher.model,
                "base_url": teacher.base_url,
                "params": {k: v for k, v in stored.items() if k != "version_id"},
                "followup": followup,
            },
        )
        job_id = str(job.id)
        after_commit(session, lambda: queue.send(LABEL, [job_id]))
        log.info("labelling.queued", job_id=job_id, tenant=tenant.slug, adapter=adapter.name)
        return job

    def get(self, session: Session, *, tenant: Tenant, job_id: uuid.UUID) -> LabellingJob:
        job = LabellingJobRepository(session, tenant.id).get(job_id)
        if job is None:
            raise NotFound(f"labelling job '{job_id}' not found")
        return job

    def list(
        self,
        session: Session,
        *,
        tenant: Tenant,
        adapter: str | None,
        status: str | None,
        limit: int,
    ) -> Sequence[LabellingJob]:
        adapter_id = adapters.get(session, tenant=tenant, name=adapter).id if adapter else None
        return LabellingJobRepository(session, tenant.id).list(
            adapter_id=adapter_id, status=status, limit=limit
        )

    def cancel(
        self, session: Session, *, actor: Principal, tenant: Tenant, job_id: uuid.UUID
    ) -> LabellingJob:
        """A queued job is cancelled at once; a running one stops before its next prompt and
        stores nothing."""
        self.get(session, tenant=tenant, job_id=job_id)
        job = LabellingJobRepository(session, tenant.id).get(job_id, lock=True)
        if job is None:
            raise NotFound(f"labelling job '{job_id}' not found")
        if job.status in FINISHED:
            raise Conflict(f"labelling job '{job_id}' is already {job.status}")
        if job.status == "queued":
            self.finish(session, job, "cancelled", f"cancelled by {actor.subject}")
        job.cancel_requested = True
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="labelling_job.cancel",
            target_type="labelling_job",
            target_id=str(job.id),
            tenant_id=tenant.id,
            details={"status": job.status},
        )
        return job

    # The worker's and the reaper's state changes.

    def claim(self, session: Session, *, job_id: uuid.UUID, worker: str) -> LabellingJob | None:
        """The job, now running for `worker`; None when it is not queued (taken, finished)."""
        repo = PlatformLabellingRepository(session)
        if not repo.claim(job_id, worker=worker, now=utcnow()):
            return None
        return repo.find(job_id, lock=True)

    def finish(self, session: Session, job: LabellingJob, status: str, error: str = "") -> None:
        job.status = status  # type: ignore[assignment]
        job.error = error[:4000]
        job.finished_at = utcnow()
        log.info(
            "labelling.finished", job_id=str(job.id), status=status, error=error, counts=job.counts
        )

    def fail_stale(self, session: Session, *, before: dt.datetime) -> builtins.list[uuid.UUID]:
        """Running jobs whose worker stopped beating before `before`: failed, nothing stored."""
        failed = []
        for job in PlatformLabellingRepository(session).stale_running(before):
            last = job.heartbeat_at.isoformat() if job.heartbeat_at else "never"
            self.finish(session, job, "failed", f"worker lost (last heartbeat {last})")
            failed.append(job.id)
        session.flush()
        return failed

    def to_out(
        self, session: Session, rows: Sequence[LabellingJob]
    ) -> builtins.list[LabellingJobOut]:
        labels = PlatformLabellingRepository(session).labels(rows)
        out = []
        for job in rows:
            slug, adapter, teacher = labels[job.id]
            params = {k: v for k, v in job.params.items() if k != "version_id"}
            out.append(
                LabellingJobOut(
                    id=job.id,
                    tenant=slug,
                    adapter=adapter,
                    teacher=teacher,
                    status=job.status,
                    params=params,
                    followup=job.followup,
                    progress=job.progress or {},
                    counts=job.counts or {},
                    dataset_id=job.dataset_id,
                    training_job_id=job.training_job_id,
                    error=job.error,
                    cancel_requested=job.cancel_requested,
                    worker=job.worker,
                    heartbeat_at=job.heartbeat_at,
                    created_by=job.created_by,
                    created_at=job.created_at,
                    started_at=job.started_at,
                    finished_at=job.finished_at,
                )
            )
        return out


labelling = LabellingService()
