"""Evaluate jobs: score an existing version on its adapter's eval suites and its base model's
general suite (and the base model and `production` where they have no score yet). A job like a
training job — queued, claimed, with progress and events — that leaves the version as it is."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from registry.adapters.versions import versions
from registry.auth.principal import Principal
from registry.base_models.repository import BaseModelRepository
from registry.errors import Conflict, Unprocessable, require
from registry.models import Adapter, AdapterVersion, Tenant, TrainingJob
from registry.models.enums import JobKind, JobStatus, Trigger
from registry.settings import Settings
from registry.suites.pins import pinned_suites
from registry.tasks import TaskQueue
from registry.training.service import queue_job


def suites_to_score(session: Session, adapter: Adapter) -> int:
    """How many suites a version of this adapter is scored on (pinned + general)."""
    pinned = pinned_suites(session, adapter)
    base = require(BaseModelRepository(session).get(adapter.base_model_id), "base model")
    return len(pinned) + (base.general_suite_id is not None)


class EvaluateService:
    def create(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        adapter: Adapter,
        number: int,
        settings: Settings,
        queue: TaskQueue,
        trigger: Trigger = Trigger.MANUAL,
    ) -> TrainingJob:
        version = versions.get(session, adapter=adapter, number=number)
        if version.status != "ready" or not version.artifact_prefix:
            raise Conflict(
                f"version {number} is '{version.status}'; only a ready version can be evaluated"
            )
        if tenant.disabled:
            raise Conflict(f"tenant '{tenant.slug}' is disabled")
        if suites_to_score(session, adapter) == 0:
            raise Unprocessable(
                f"adapter '{adapter.name}' has no eval suites and its base model no general "
                "suite: pin one first (PUT .../adapters/{name}/eval-suites, or "
                "`loraplex evals attach`)"
            )
        return self._queue(session, actor, tenant, adapter, version, settings, queue, trigger)

    def after_upload(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        adapter: Adapter,
        version: AdapterVersion,
        settings: Settings,
        queue: TaskQueue,
    ) -> TrainingJob | None:
        """An uploaded version is scored like a trained one, when there is a suite to score."""
        if suites_to_score(session, adapter) == 0:
            return None
        return self._queue(
            session, actor, tenant, adapter, version, settings, queue, Trigger.UPLOAD
        )

    @staticmethod
    def _queue(
        session: Session,
        actor: Principal,
        tenant: Tenant,
        adapter: Adapter,
        version: AdapterVersion,
        settings: Settings,
        queue: TaskQueue,
        trigger: Trigger,
    ) -> TrainingJob:
        job = TrainingJob(
            id=uuid.uuid4(),
            tenant_id=tenant.id,
            adapter_id=adapter.id,
            version_id=version.id,
            kind=JobKind.EVALUATE,
            status=JobStatus.QUEUED,
            trigger=trigger,
            trigger_ref={"evaluate": f"v{version.version}"},
            config=version.training_config,
            dataset_ids=[],
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
            event=f"evaluate version {version.version} ({trigger})",
            action="evaluate_job.create",
            details={"adapter": adapter.name, "version": version.version, "trigger": trigger},
            settings=settings,
        )


evaluations = EvaluateService()
