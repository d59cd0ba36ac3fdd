"""Drift retrains on traffic: the new version learns the prompts that drifted.

When a drift policy with `datasets: traffic` fires, the window's traffic is curated (answers
people corrected, and answers they approved with rating 1) into the policy's curated dataset,
and the retrain trains on it together with the tenant's newest uploaded data. With a teacher,
a labelling job first answers the window's prompts nobody corrected or approved; once its
dataset exists, `train_after_labelling` (called by the labelling worker, in its transaction)
starts the training job on curated + teacher + uploaded data.

Everything runs inside `retrain_guard` (the adapter's lock, one job at a time, a savepoint):
a refusal anywhere stores nothing and becomes a Skipped with the reason.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.auth.principal import Principal
from registry.errors import Unprocessable
from registry.labelling.schemas import LabellingParams
from registry.labelling.service import labelling
from registry.models import Adapter, Dataset, DriftPolicy, LabellingJob, Tenant, TrainingJob
from registry.models.enums import JobStatus
from registry.settings import Settings
from registry.storage import ObjectStore
from registry.tasks import TaskQueue
from registry.traffic.curate import TrafficFilter, curate
from registry.training.automatic import Skipped, retrain_guard
from registry.training.schemas import TrainingJobCreate
from registry.training.selection import uploaded_datasets
from registry.training.service import training

log = structlog.get_logger(__name__)
APPROVED = [1]  # curated: corrections (any rating) and answers rated 1
NO_TRAFFIC = "no corrected or approved traffic in the window; name a teacher to label it"


@dataclass(frozen=True)
class TrafficRetrain:
    """What a traffic retrain started: a training job now, or a labelling job first."""

    job: TrainingJob | None
    labelling: LabellingJob | None
    traffic: dict[str, Any]

    @property
    def message(self) -> str:
        rows = f"{self.traffic.get('rows', 0)} curated rows"
        if self.labelling is not None:
            return f"labelling job {self.labelling.id} ({rows} so far); training follows it"
        return f"training job {self.job.id if self.job else '?'} on {rows}"


def traffic_dataset_name(policy: DriftPolicy, adapter: Adapter) -> str:
    name = (policy.details or {}).get("traffic_dataset")
    return name if isinstance(name, str) and name else f"{adapter.name}-traffic"


def start_traffic_retrain(
    session: Session,
    *,
    tenant: Tenant,
    adapter: Adapter,
    policy: DriftPolicy,
    since: dt.datetime,
    until: dt.datetime,
    teacher: str | None,
    trigger_ref: dict[str, Any],
    settings: Settings,
    queue: TaskQueue,
    store: ObjectStore,
    actor: Principal,
) -> TrafficRetrain:
    """Raises Skipped (nothing stored) when no job can start."""
    with retrain_guard(session, tenant=tenant, adapter=adapter):
        busy = _unfinished_labelling(session, tenant, adapter)
        if busy is not None:
            raise Skipped(f"labelling job {busy.id} of adapter '{adapter.name}' is still running")
        name = traffic_dataset_name(policy, adapter)
        traffic, curated = _curate(
            session, actor, tenant, adapter, name, since, until, store, settings
        )
        uploaded = uploaded_datasets(session, adapter, policy.dataset_names, exclude=name)
        traffic["uploaded"] = [{"name": d.name, "version": d.version} for d in uploaded]
        if teacher is None:
            if curated is None:
                raise Skipped(NO_TRAFFIC)
            job = _train(
                session,
                actor=actor,
                tenant=tenant,
                adapter=adapter,
                dataset_ids=[curated.id, *(d.id for d in uploaded)],
                trigger_ref={**trigger_ref, "traffic": traffic},
                settings=settings,
                queue=queue,
            )
            return TrafficRetrain(job, None, traffic)
        traffic["teacher"] = teacher
        follow = {
            "curated_dataset_id": str(curated.id) if curated else None,
            "uploaded_dataset_ids": [str(d.id) for d in uploaded],
            "trigger_ref": {**trigger_ref, "traffic": traffic},
            "actor": actor.subject,
        }
        params = LabellingParams(
            dataset=f"{name}-teacher",
            since=since,
            until=until,
            skip_answered=True,
        )
        job_l = labelling.create(
            session,
            actor=actor,
            tenant=tenant,
            adapter=adapter,
            teacher_name=teacher,
            params=params,
            followup={"train": follow},
            queue=queue,
        )
        return TrafficRetrain(None, job_l, traffic)


def train_after_labelling(
    session: Session, *, job: LabellingJob, settings: Settings, queue: TaskQueue
) -> TrainingJob | None:
    """The training job a drift policy's labelling job was the first half of: on the curated
    traffic, the teacher's dataset and the uploaded data chosen when the drift fired. None when
    the job has no such follow-up, or the retrain cannot start now (logged with the reason)."""
    follow = (job.followup or {}).get("train")
    if not isinstance(follow, dict) or job.dataset_id is None:
        return None
    tenant = session.get(Tenant, job.tenant_id)
    adapter = session.get(Adapter, job.adapter_id)
    if tenant is None or adapter is None or adapter.tenant_id != tenant.id:
        return None
    ids = [follow.get("curated_dataset_id"), str(job.dataset_id)]
    ids += list(follow.get("uploaded_dataset_ids") or [])
    ref = dict(follow.get("trigger_ref") or {})
    teacher_part = {
        "labelling_job_id": str(job.id),
        "dataset_id": str(job.dataset_id),
        **{k: v for k, v in (job.counts or {}).items() if k in ("sent", "kept", "refused")},
    }
    ref["traffic"] = {**(ref.get("traffic") or {}), "labelled": teacher_part}
    actor = Principal.local_operator(str(follow.get("actor") or "drift-monitor"))
    try:
        with retrain_guard(session, tenant=tenant, adapter=adapter):
            return _train(
                session,
                actor=actor,
                tenant=tenant,
                adapter=adapter,
                dataset_ids=[uuid.UUID(i) for i in dict.fromkeys(ids) if i],
                trigger_ref=ref,
                settings=settings,
                queue=queue,
            )
    except Skipped as exc:
        log.warning(
            "traffic.retrain_skipped",
            tenant=tenant.slug,
            adapter=adapter.name,
            labelling_job=str(job.id),
            reason=str(exc),
        )
        return None


def _curate(
    session: Session,
    actor: Principal,
    tenant: Tenant,
    adapter: Adapter,
    name: str,
    since: dt.datetime,
    until: dt.datetime,
    store: ObjectStore,
    settings: Settings,
) -> tuple[dict[str, Any], Dataset | None]:
    """The window's corrected and approved traffic as a version of `name`; (summary, None)
    when there is none."""
    filt = TrafficFilter(
        adapter=adapter.name,
        version=None,
        since=since,
        until=until,
        ratings=APPROVED,
        corrected_only=False,
    )
    try:
        done, summary = curate(
            session,
            actor=actor,
            tenant=tenant,
            name=name,
            filt=filt,
            min_count=1,
            store=store,
            settings=settings,
        )
    except Unprocessable as exc:
        seen = exc.extra.get("traffic")
        if isinstance(seen, dict) and seen.get("rows") == 0:  # min_count 1 not reached
            return {"dataset": name, "rows": 0, "corrected": 0, "matched": seen["matched"]}, None
        raise
    traffic = {
        "dataset_id": str(done.row.id),
        "dataset": name,
        "version": done.row.version,
        "rows": summary.get("rows", done.row.rows),
        "corrected": summary.get("corrected", 0),
        "matched": summary.get("matched", 0),
        "window": {"since": since.isoformat(), "until": until.isoformat()},
    }
    return traffic, done.row


def _train(
    session: Session,
    *,
    actor: Principal,
    tenant: Tenant,
    adapter: Adapter,
    dataset_ids: list[uuid.UUID],
    trigger_ref: dict[str, Any],
    settings: Settings,
    queue: TaskQueue,
) -> TrainingJob:
    return training.create(
        session,
        actor=actor,
        tenant=tenant,
        data=TrainingJobCreate(adapter=adapter.name, dataset_ids=dataset_ids),
        settings=settings,
        queue=queue,
        trigger="drift",
        trigger_ref=trigger_ref,
    )


def _unfinished_labelling(
    session: Session, tenant: Tenant, adapter: Adapter
) -> LabellingJob | None:
    stmt = (
        select(LabellingJob)
        .where(
            LabellingJob.tenant_id == tenant.id,
            LabellingJob.adapter_id == adapter.id,
            LabellingJob.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
        )
        .order_by(LabellingJob.created_at)
    )
    # a JSON null and SQL NULL look alike in Python; a hand-run labelling job blocks nothing
    return next((j for j in session.execute(stmt).scalars() if j.followup), None)
