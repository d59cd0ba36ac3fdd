"""Fine-tuning jobs: OpenAI's create / retrieve / list / cancel / pause / resume over loraplex's
training jobs.

A job trains a new version of the tenant's adapter `ft-<base>[-<suffix>]`, created on first use
with the platform's default training config; promotion follows that adapter's policy as for any
job, and the exact version is always reachable by its `fine_tuned_model` name. The
FineTuningJob row keeps what the client asked for under the training job's own id. A file that
failed validation at upload makes a job that is `failed` from the start, with no training job.
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy.orm import Session

from registry.adapters.repository import AdapterRepository
from registry.adapters.schemas import AdapterCreate, TrainingConfig
from registry.adapters.service import adapters
from registry.auth.principal import Principal
from registry.base_models.repository import BaseModelRepository
from registry.errors import Conflict
from registry.finetuning import hyperparameters as hp
from registry.finetuning import ids, names
from registry.finetuning.errors import OpenAIError
from registry.finetuning.jobs_repository import FineTuningJobRepository
from registry.finetuning.jobs_schemas import JobCreate, JobOut, job_out
from registry.models import (
    Adapter,
    AdapterVersion,
    Dataset,
    FineTuningJob,
    Tenant,
    TenantFile,
    TrainingJob,
)
from registry.models.enums import JobStatus
from registry.settings import Settings
from registry.storage import ObjectStore
from registry.tasks import TaskQueue
from registry.training.repository import TrainingJobRepository
from registry.training.schemas import FINISHED, TrainingJobCreate
from registry.training.service import add_event, training

log = structlog.get_logger(__name__)

KEEP_CHECKPOINTS = 3
_INVALID = "The job failed due to an invalid {what} file. {detail}"


def adapter_name(base: str, suffix: str) -> str:
    """`ft-<base>[-<suffix>]`; a name over the adapter limit (100) keeps a hash of the rest."""
    name = f"ft-{base}-{suffix}" if suffix else f"ft-{base}"
    if len(name) <= 100:
        return name
    return f"{name[:91]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


class FineTuningService:
    def create(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        body: JobCreate,
        settings: Settings,
        queue: TaskQueue,
    ) -> FineTuningJob:
        asked = hp.asked(body.method, body.hyperparameters, body.integrations)
        base = BaseModelRepository(session).get_by_name(body.model)
        if base is None:
            raise OpenAIError(
                404,
                f"The model '{body.model}' does not exist or you do not have access to it.",
                code="model_not_found",
                param="model",
            )
        repo = FineTuningJobRepository(session, tenant.id)
        train_file = self._file(repo, body.training_file, "training_file")
        valid_file = (
            self._file(repo, body.validation_file, "validation_file")
            if body.validation_file
            else None
        )
        suffix, seed = (
            body.suffix or "",
            secrets.randbelow(2**32) if body.seed is None else body.seed,
        )
        row = FineTuningJob(
            tenant_id=tenant.id,
            model=base.name,
            suffix=suffix,
            training_file_id=train_file.id,
            validation_file_id=valid_file.id if valid_file else None,
            seed=seed,
            job_metadata=body.metadata,
            method={"type": "supervised", "supervised": {"hyperparameters": asked}},
            hyperparameters=asked,
            created_by=actor.subject,
        )
        refused = self._refusal(train_file, valid_file)
        if refused is not None:
            row.id, row.error = uuid.uuid4(), refused
        else:
            job = self._train(
                session,
                actor=actor,
                tenant=tenant,
                base_name=base.name,
                row=row,
                files=(train_file, valid_file),
                asked=asked,
                settings=settings,
                queue=queue,
            )
            row.id, row.training_job_id, row.adapter_id = job.id, job.id, job.adapter_id
        row.fine_tuned_model = self._unique_name(repo, base.name, tenant.slug, suffix, row.id)
        repo.add(row)
        session.flush()
        log.info(
            "fine_tuning.job_created",
            job=ids.encode(ids.JOB, row.id),
            tenant=tenant.slug,
            failed=refused is not None,
        )
        return row

    def _train(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        base_name: str,
        row: FineTuningJob,
        files: tuple[TenantFile, TenantFile | None],
        asked: dict[str, Any],
        settings: Settings,
        queue: TaskQueue,
    ) -> TrainingJob:
        train_file, valid_file = files
        train_ds = session.get(Dataset, train_file.dataset_id)
        if train_ds is None:
            raise OpenAIError(
                404,
                f"file '{ids.encode(ids.FILE, train_file.id)}' has no data",
                param="training_file",
            )
        chosen = hp.choose(asked, rows=train_ds.rows)
        row.hyperparameters = chosen.as_dict()
        row.method = {"type": "supervised", "supervised": {"hyperparameters": chosen.as_dict()}}
        adapter = self._adapter(
            session,
            actor=actor,
            tenant=tenant,
            base=base_name,
            suffix=row.suffix,
            settings=settings,
        )
        base_lr = float(adapter.training_config.get("learning_rate", 2e-4))
        data = TrainingJobCreate(
            adapter=adapter.name,
            dataset_ids=[train_ds.id],
            validation_dataset_id=valid_file.dataset_id if valid_file else None,
            hyperparameters=hp.overrides(chosen, base_learning_rate=base_lr, seed=row.seed),
        )
        job = training.create(
            session,
            actor=actor,
            tenant=tenant,
            data=data,
            settings=settings,
            queue=queue,
            trigger="manual",
            trigger_ref={"api": "openai"},
        )
        ref = {"api": "openai", "fine_tuning_job": ids.encode(ids.JOB, job.id)}
        job.trigger_ref, job.keep_checkpoints = ref, KEEP_CHECKPOINTS
        from registry.training.lifecycle import lifecycle

        lifecycle.version(session, job).trigger_ref = dict(ref)
        add_event(
            session,
            job,
            "validating_files",
            f"Validating training file: {ids.encode(ids.FILE, train_file.id)}",
        )
        if valid_file is not None:
            add_event(
                session,
                job,
                "validating_files",
                f"Validating validation file: {ids.encode(ids.FILE, valid_file.id)}",
            )
        add_event(session, job, "files_validated", "Files validated, moving job to queued state")
        return job

    def _adapter(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        base: str,
        suffix: str,
        settings: Settings,
    ) -> Adapter:
        """The job's adapter, created on first use (a concurrent creator's row is taken)."""
        name = adapter_name(base, suffix)
        repo = AdapterRepository(session, tenant.id)
        found = repo.get_by_name(name)
        if found is None:
            data = AdapterCreate(name=name, base_model=base, training=TrainingConfig())
            try:
                return adapters.create(
                    session, actor=actor, tenant=tenant, data=data, settings=settings
                )
            except Conflict:
                found = repo.get_by_name(name)
                if found is None:
                    raise
        bound = BaseModelRepository(session).get(found.base_model_id)
        if bound is None or bound.name != base:
            raise OpenAIError(
                409,
                f"adapter '{name}' exists on another base model; rename it or pick a suffix",
                code="adapter_conflict",
                param="suffix",
            )
        return found

    @staticmethod
    def _file(repo: FineTuningJobRepository, file_id: str, param: str) -> TenantFile:
        found = None
        row_id = ids.decode(ids.FILE, file_id)
        if row_id is not None:
            found = repo.file(row_id)
        if found is None:
            raise OpenAIError(404, f"No such File object: {file_id}", param=param)
        if found.purpose != "fine-tune":
            raise OpenAIError(
                400,
                f"{file_id} has purpose '{found.purpose}'; a job takes 'fine-tune' files",
                code="invalid_file_purpose",
                param=param,
            )
        return found

    @staticmethod
    def _refusal(train: TenantFile, valid: TenantFile | None) -> dict[str, Any] | None:
        for file, what, param in (
            (train, "training", "training_file"),
            (valid, "validation", "validation_file"),
        ):
            if file is not None and file.status == "error":
                detail = (file.error or {}).get("message") or "the file failed validation"
                return {
                    "code": f"invalid_{what}_file",
                    "message": _INVALID.format(what=what, detail=detail),
                    "param": param,
                }
        return None

    @staticmethod
    def _unique_name(
        repo: FineTuningJobRepository, base: str, slug: str, suffix: str, job_id: uuid.UUID
    ) -> str:
        for digits in (8, 12, 16, 32):
            name = names.fine_tuned_model(base, slug, suffix, job_id.hex[:digits])
            if not repo.name_taken(name):
                return name
        raise Conflict("could not name the fine-tuned model; retry")

    def get(self, session: Session, *, tenant: Tenant, job_id: str) -> FineTuningJob:
        row_id = ids.decode(ids.JOB, job_id)
        row = FineTuningJobRepository(session, tenant.id).get(row_id) if row_id else None
        if row is None:
            raise OpenAIError(404, f"No such fine-tuning job: {job_id}", param="fine_tuning_job_id")
        return row

    def list(
        self,
        session: Session,
        *,
        tenant: Tenant,
        after: str | None,
        limit: int,
        metadata: dict[str, str],
    ) -> tuple[builtins.list[FineTuningJob], bool]:
        cursor = self.get(session, tenant=tenant, job_id=after) if after else None
        rows = FineTuningJobRepository(session, tenant.id).page(
            after=cursor, limit=limit + 1, metadata=metadata
        )
        return list(rows[:limit]), len(rows) > limit

    def training_job(self, session: Session, row: FineTuningJob) -> TrainingJob | None:
        if row.training_job_id is None:
            return None
        return TrainingJobRepository(session, row.tenant_id).get(row.training_job_id)

    def _state(
        self, session: Session, *, tenant: Tenant, job_id: str, allowed: tuple[str, ...], verb: str
    ) -> tuple[FineTuningJob, TrainingJob]:
        row = self.get(session, tenant=tenant, job_id=job_id)
        job = self.training_job(session, row)
        status = job.status if job is not None else JobStatus.FAILED
        if job is None or status not in allowed:
            raise OpenAIError(
                400,
                f"Job {job_id} is {status}; only a {' or '.join(allowed)} job can be {verb}",
                code="invalid_state",
            )
        return row, job

    def cancel(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        job_id: str,
        store: ObjectStore | None = None,
    ) -> FineTuningJob:
        """`store`: where a paused job's saved state and checkpoints are deleted from."""
        live = tuple(s.value for s in JobStatus if s not in FINISHED)
        row, job = self._state(
            session, tenant=tenant, job_id=job_id, allowed=live, verb="cancelled"
        )
        training.cancel(session, actor=actor, tenant=tenant, job_id=job.id, store=store)
        return row

    def pause(
        self, session: Session, *, actor: Principal, tenant: Tenant, job_id: str
    ) -> FineTuningJob:
        row, job = self._state(
            session, tenant=tenant, job_id=job_id, allowed=("queued", "running"), verb="paused"
        )
        training.pause(session, actor=actor, tenant=tenant, job_id=job.id)
        return row

    def resume(
        self, session: Session, *, actor: Principal, tenant: Tenant, job_id: str, queue: TaskQueue
    ) -> FineTuningJob:
        row, job = self._state(
            session, tenant=tenant, job_id=job_id, allowed=("paused",), verb="resumed"
        )
        training.resume(session, actor=actor, tenant=tenant, job_id=job.id, queue=queue)
        return row

    def to_out(
        self, session: Session, *, tenant: Tenant, rows: Sequence[FineTuningJob]
    ) -> builtins.list[JobOut]:
        repo = FineTuningJobRepository(session, tenant.id)
        results = repo.result_files([r.id for r in rows if r.training_job_id])
        out = []
        for row in rows:
            job = self.training_job(session, row)
            version = session.get(AdapterVersion, job.version_id) if job else None
            adapter = session.get(Adapter, row.adapter_id) if row.adapter_id else None
            out.append(
                job_out(
                    row,
                    job=job,
                    tenant_slug=tenant.slug,
                    version=version,
                    adapter=adapter.name if adapter else None,
                    result_files=results.get(row.id, []),
                )
            )
        return out


fine_tuning = FineTuningService()
