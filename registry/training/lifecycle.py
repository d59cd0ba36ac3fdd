"""A job's life as workers drive it: claim under the adapter's lock, renew the lease, record the
artifact, finish, fail or retry; and the reaper for jobs whose worker died.

Each method runs inside the caller's transaction and only flushes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from registry.adapters.repository import AdapterRepository, VersionRepository
from registry.adapters.versions import artifact_prefix as version_prefix
from registry.db import utcnow
from registry.errors import Inconsistent, require
from registry.models import Adapter, AdapterVersion, TrainingCheckpoint, TrainingJob
from registry.models.enums import JobKind, JobStatus, VersionStatus
from registry.notify import announce
from registry.training import queueing
from registry.training.repository import PlatformJobRepository, TrainingJobRepository
from registry.training.service import add_event

Heartbeat = Literal["ok", "cancel", "pause", "lost"]


@dataclass(frozen=True)
class Claim:
    state: Literal["claimed", "busy", "finished", "missing", "idle"]
    job: TrainingJob | None = None
    blocked_by: uuid.UUID | None = None


@dataclass(frozen=True)
class Reaped:
    job_id: uuid.UUID
    requeued: bool
    artifact_prefix: str | None  # to delete when the job failed for good


class JobLifecycle:
    def version(self, session: Session, job: TrainingJob) -> AdapterVersion:
        found = VersionRepository(session, job.tenant_id).get_by_id(job.version_id)
        return require(found, f"the version of job {job.id}")

    def adapter(self, session: Session, job: TrainingJob) -> Adapter:
        found = session.get(Adapter, job.adapter_id)
        if found is None or found.tenant_id != job.tenant_id:
            raise Inconsistent(f"the adapter of job {job.id} is gone")
        return found

    def claim_next(
        self, session: Session, *, worker: str, lease_seconds: int, tenant_cap: int
    ) -> Claim:
        """Start the next job in fair order (see registry/training/queueing.py), or none
        ("idle") when nothing is claimable. Claims queue on one transaction-scoped lock for
        the pick, so concurrent workers never take one job twice or break the caps."""
        queueing.lock_claims(session)
        for _ in range(3):  # a job cancelled or paused between the pick and its row lock
            job_id = queueing.next_job_id(session, now=utcnow(), tenant_cap=tenant_cap)
            if job_id is None:
                return Claim("idle")
            stmt = select(TrainingJob).where(TrainingJob.id == job_id).with_for_update()
            job = session.execute(stmt.execution_options(populate_existing=True)).scalar_one()
            if job.status == JobStatus.QUEUED:
                return self._start(session, job, worker, lease_seconds)
        return Claim("idle")

    def claim(
        self, session: Session, *, job_id: uuid.UUID, worker: str, lease_seconds: int
    ) -> Claim:
        """Start this queued job (whatever the fair order), unless another job of the same
        adapter is running: the adapter's row lock makes this check-and-set atomic, so two
        jobs never train one adapter at once."""
        found = PlatformJobRepository(session).find(job_id)
        if found is None:
            return Claim("missing")
        queueing.lock_claims(session)
        AdapterRepository(session, found.tenant_id).lock(self.adapter(session, found))
        repo = TrainingJobRepository(session, found.tenant_id)
        job = require(repo.get(job_id, lock=True), f"job {job_id}")
        if job.status != JobStatus.QUEUED:
            return Claim("finished", job)
        other = repo.running_for_adapter(job.adapter_id, exclude=job.id)
        if other is not None:
            last = repo.events(job.id)[-1:]
            if not last or last[0].kind != "waiting":
                add_event(
                    session,
                    job,
                    "waiting",
                    f"job {other.id} is training this adapter",
                    blocked_by=str(other.id),
                )
            job.updated_at = utcnow()
            session.flush()
            return Claim("busy", job, other.id)
        return self._start(session, job, worker, lease_seconds)

    def _start(self, session: Session, job: TrainingJob, worker: str, lease_seconds: int) -> Claim:
        now = utcnow()
        job.status, job.worker, job.not_before = JobStatus.RUNNING, worker, None
        job.attempts += 1
        job.lease_expires_at = now + dt.timedelta(seconds=lease_seconds)
        job.started_at = job.started_at or now
        job.error = ""
        if job.kind == JobKind.TRAIN:  # an evaluate job scores a ready version: it stays ready
            moved(session, self.version(session, job), VersionStatus.TRAINING)
        add_event(session, job, "started", f"attempt {job.attempts} on {worker}", worker=worker)
        queueing.took_turn(session, job.tenant_id, now)
        session.flush()
        return Claim("claimed", job)

    def heartbeat(
        self,
        session: Session,
        *,
        job_id: uuid.UUID,
        worker: str,
        lease_seconds: int,
        progress: dict[str, Any] | None = None,
    ) -> Heartbeat:
        job = PlatformJobRepository(session).find(job_id)
        if job is None:
            return "lost"
        job = require(TrainingJobRepository(session, job.tenant_id).get(job_id, lock=True), "job")
        if job.status != JobStatus.RUNNING or job.worker != worker:
            return "lost"
        job.lease_expires_at = utcnow() + dt.timedelta(seconds=lease_seconds)
        if progress is not None:
            job.progress = progress
        session.flush()
        if job.cancel_requested:
            return "cancel"
        return "pause" if job.pause_requested else "ok"

    def pause(
        self, session: Session, *, job: TrainingJob, resume_key: str, step: int, total_steps: int
    ) -> None:
        """The worker stopped at `step` and stored the run's state at `resume_key`: the job
        waits, with no worker and no lease (the reaper leaves it alone), for a resume."""
        job.status, job.resume_key, job.pause_requested = JobStatus.PAUSED, resume_key, False
        job.worker, job.lease_expires_at = None, None
        moved(session, self.version(session, job), VersionStatus.QUEUED)
        add_event(
            session,
            job,
            "paused",
            f"paused at step {step} of {total_steps}",
            step=step,
            total_steps=total_steps,
        )
        session.flush()

    def record_checkpoint(
        self,
        session: Session,
        *,
        job: TrainingJob,
        step: int,
        metrics: dict[str, Any],
        prefix: str,
        manifest: dict[str, Any],
        manifest_digest: str,
        size_bytes: int,
    ) -> tuple[TrainingCheckpoint, list[str]]:
        """Record the adapter stored under `prefix` at `step`, and forget the oldest beyond the
        job's `keep_checkpoints`. Returns the new row and the prefixes whose objects the caller
        deletes once this commits."""
        version = self.version(session, job)
        checkpoint = TrainingCheckpoint(
            tenant_id=job.tenant_id,
            job_id=job.id,
            adapter_id=job.adapter_id,
            version_id=job.version_id,
            base_model_id=version.base_model_id,
            step=step,
            metrics=metrics,
            artifact_prefix=prefix,
            manifest=manifest,
            manifest_digest=manifest_digest,
            size_bytes=size_bytes,
        )
        session.add(checkpoint)
        session.flush()
        rows = session.scalars(
            select(TrainingCheckpoint)
            .where(TrainingCheckpoint.job_id == job.id)
            .order_by(TrainingCheckpoint.step.desc())
        ).all()
        old = list(rows[max(1, job.keep_checkpoints) :])
        for row in old:
            session.delete(row)
        add_event(session, job, "checkpoint", f"Checkpoint created at step {step}", step=step)
        session.flush()
        return checkpoint, [row.artifact_prefix for row in old]

    def drop_checkpoints(
        self, session: Session, *, job: TrainingJob, after_step: int = 0
    ) -> list[str]:
        """Forget the job's checkpoints past `after_step` (all by default): a new attempt makes
        them again, a failed or cancelled job keeps none. Returns their prefixes."""
        stmt = select(TrainingCheckpoint).where(
            TrainingCheckpoint.job_id == job.id, TrainingCheckpoint.step > after_step
        )
        prefixes = [row.artifact_prefix for row in session.scalars(stmt)]
        session.execute(
            delete(TrainingCheckpoint).where(
                TrainingCheckpoint.job_id == job.id, TrainingCheckpoint.step > after_step
            )
        )
        session.flush()
        return prefixes

    def record_artifact(
        self,
        session: Session,
        *,
        job: TrainingJob,
        prefix: str,
        manifest: dict[str, Any],
        manifest_digest: str,
        size_bytes: int,
    ) -> AdapterVersion:
        version = self.version(session, job)
        version.artifact_prefix, version.manifest = prefix, manifest
        version.manifest_digest, version.size_bytes = manifest_digest, size_bytes
        moved(session, version, VersionStatus.EVALUATING)
        add_event(
            session, job, "artifact", f"stored under {prefix}", manifest_digest=manifest_digest
        )
        session.flush()
        return version

    def mark_ready(self, session: Session, *, job: TrainingJob) -> AdapterVersion:
        version = self.version(session, job)
        moved(session, version, VersionStatus.READY)
        version.ready_at = utcnow()
        session.flush()
        return version

    def succeed(self, session: Session, *, job: TrainingJob, result: dict[str, Any]) -> None:
        job.status, job.result = JobStatus.SUCCEEDED, result
        job.pause_requested, job.resume_key = False, None  # too late to pause: it is done
        job.finished_at, job.lease_expires_at = utcnow(), None
        number = self.version(session, job).version
        done = "scored" if job.kind == JobKind.EVALUATE else "ready"
        add_event(session, job, "succeeded", f"version {number} {done}")
        session.flush()

    def finish_cancelled(self, session: Session, *, job: TrainingJob, by: str = "") -> None:
        job.status, job.finished_at, job.lease_expires_at = JobStatus.CANCELLED, utcnow(), None
        job.pause_requested, job.resume_key = False, None
        if job.kind == JobKind.TRAIN:
            self.drop_checkpoints(session, job=job)  # their objects go with the artifact
            version = self.version(session, job)
            moved(session, version, VersionStatus.CANCELLED, "job cancelled")
            version.artifact_prefix = version.manifest = version.manifest_digest = None
        add_event(session, job, "cancelled", f"by {by}" if by else "stopped at the next step")
        session.flush()

    def fail(
        self,
        session: Session,
        *,
        job: TrainingJob,
        error: str,
        retryable: bool,
        retry_after: float = 0.0,
    ) -> bool:
        """Requeue when attempts remain and the error is transient (not claimed again for
        `retry_after` seconds); else fail for good. Returns whether the job was requeued."""
        version = self.version(session, job)
        training = job.kind == JobKind.TRAIN  # an evaluate job leaves its version as it was
        job.error, job.worker, job.lease_expires_at = error[:4000], None, None
        if retryable and job.attempts < job.max_attempts and not job.cancel_requested:
            job.status = JobStatus.QUEUED
            job.not_before = (
                utcnow() + dt.timedelta(seconds=retry_after) if retry_after > 0 else None
            )
            if training:
                moved(session, version, VersionStatus.QUEUED)
            add_event(
                session,
                job,
                "retrying",
                f"attempt {job.attempts} of {job.max_attempts} failed: {error[:500]}",
            )
            session.flush()
            return True
        job.status, job.finished_at = JobStatus.FAILED, utcnow()
        job.pause_requested, job.resume_key = False, None
        if training:
            self.drop_checkpoints(session, job=job)  # their objects go with the artifact
            moved(session, version, VersionStatus.FAILED, error[:2000])
            version.artifact_prefix = version.manifest = version.manifest_digest = None
        add_event(session, job, "failed", error[:2000])
        session.flush()
        return False

    def reap(self, session: Session, *, now: dt.datetime) -> list[Reaped]:
        """Jobs whose worker stopped renewing the lease: retry them, or fail them for good."""
        out = []
        for job in PlatformJobRepository(session).expired_leases(now):
            prefix: str | None = None  # an evaluate job's artifact is the version's: kept
            if job.kind == JobKind.TRAIN:
                prefix = self.version(session, job).artifact_prefix or artifact_prefix(job)
            expired = job.lease_expires_at
            requeued = self.fail(
                session,
                job=job,
                error=f"worker {job.worker} lost: lease expired at {expired:%Y-%m-%dT%H:%M:%SZ}",
                retryable=True,
            )
            out.append(Reaped(job.id, requeued, None if requeued or prefix is None else prefix))
        return out

    def stale_queued(
        self,
        session: Session,
        *,
        older_than: dt.datetime,
        limit: int = 64,
        tenant_cap: int | None = None,
    ) -> list[uuid.UUID]:
        """Up to `limit` claimable jobs nobody picked up (a lost doorbell, an embedded process
        restart). Each is touched, so it counts at most once per staleness period; an extra
        doorbell is harmless (a worker with nothing to claim returns)."""
        return queueing.stale_job_ids(
            session, older_than=older_than, tenant_cap=tenant_cap, limit=limit
        )


def moved(
    session: Session, version: AdapterVersion, status: VersionStatus, message: str | None = None
) -> None:
    """A version's status changes, and with it what the gateways answer for `name@vN`."""
    version.status = status
    if message is not None:
        version.status_message = message
    announce(session, version.tenant_id, version.adapter_id)


def artifact_prefix(job: TrainingJob) -> str:
    return version_prefix(job.tenant_id, job.adapter_id, job.version_id)


lifecycle = JobLifecycle()
