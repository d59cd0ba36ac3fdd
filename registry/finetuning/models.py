"""`/v1/models` for one tenant: what its token may name as `model`.

Listed: the registered base models (the `model` of a fine-tuning job; owned by "loraplex"), the
tenant's adapters as the gateway has always listed them (`name` when it has a production
alias, `name@alias` per alias), its fine-tuned models (jobs that succeeded, model not deleted)
and their checkpoints. Only a fine-tuned model can be deleted: that hides its name and its
checkpoints' names from this list and from the gateway; the version stays in the registry,
where lineage, evaluations and aliases still reach it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.adapters import resolve as adapter_refs
from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.db import utcnow
from registry.errors import NotFound, Unprocessable
from registry.finetuning import names, resolve
from registry.finetuning.errors import OpenAIError
from registry.models import Adapter, Alias, BaseModel, Tenant, TrainingJob
from registry.models.enums import JobStatus
from registry.models.finetuning import FineTuningJob, TrainingCheckpoint
from registry.notify import announce

log = structlog.get_logger(__name__)
PLATFORM = "loraplex"


def model_object(model_id: str, created: dt.datetime, owned_by: str) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": int(created.timestamp()),
        "owned_by": owned_by,
    }


def not_found(model: str) -> OpenAIError:
    return OpenAIError(
        404,
        f"The model '{model}' does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


def _adapters(session: Session, tenant: Tenant) -> list[dict[str, Any]]:
    """As the gateway listed them before fine-tuning: `name` at production, `name@alias`."""
    adapters = session.scalars(
        select(Adapter)
        .where(Adapter.tenant_id == tenant.id, Adapter.archived_at.is_(None))
        .order_by(Adapter.name)
    ).all()
    aliases = session.scalars(
        select(Alias).where(Alias.tenant_id == tenant.id).order_by(Alias.alias)
    ).all()
    by_adapter: dict[uuid.UUID, list[str]] = {}
    for a in aliases:
        by_adapter.setdefault(a.adapter_id, []).append(a.alias)
    data = []
    for adapter in adapters:
        held = by_adapter.get(adapter.id, [])
        ids = ([adapter.name] if adapter_refs.DEFAULT_ALIAS in held else []) + [
            f"{adapter.name}@{alias}" for alias in held
        ]
        data += [model_object(i, adapter.created_at, tenant.slug) for i in ids]
    return data


def _fine_tuned(session: Session, tenant: Tenant) -> list[dict[str, Any]]:
    """Live fine-tuned models, oldest first, each followed by its checkpoints (by step)."""
    rows = session.execute(
        select(FineTuningJob, TrainingJob)
        .join(TrainingJob, TrainingJob.id == FineTuningJob.training_job_id)
        .join(Adapter, Adapter.id == TrainingJob.adapter_id)
        .where(
            FineTuningJob.tenant_id == tenant.id,
            FineTuningJob.model_deleted_at.is_(None),
            TrainingJob.status == JobStatus.SUCCEEDED,
            Adapter.archived_at.is_(None),
        )
        .order_by(FineTuningJob.created_at, FineTuningJob.id)
    ).all()
    if not rows:
        return []
    checkpoints = session.scalars(
        select(TrainingCheckpoint)
        .where(
            TrainingCheckpoint.tenant_id == tenant.id,
            TrainingCheckpoint.job_id.in_([training.id for _, training in rows]),
        )
        .order_by(TrainingCheckpoint.step)
    ).all()
    by_job: dict[uuid.UUID, list[TrainingCheckpoint]] = {}
    for c in checkpoints:
        by_job.setdefault(c.job_id, []).append(c)
    data = []
    for job, training in rows:
        data.append(
            model_object(job.fine_tuned_model, training.finished_at or job.created_at, tenant.slug)
        )
        for c in by_job.get(training.id, []):
            name = names.checkpoint_model(job.fine_tuned_model, c.step)
            data.append(model_object(name, c.created_at, tenant.slug))
    return data


def _base_models(session: Session, taken: set[str]) -> list[dict[str, Any]]:
    """Every registered base model (the tenant may train on any); a name an adapter already
    lists is left out, since `model` with that name reaches the adapter."""
    bases = session.scalars(select(BaseModel).order_by(BaseModel.name)).all()
    return [model_object(b.name, b.created_at, PLATFORM) for b in bases if b.name not in taken]


def list_models(session: Session, *, tenant: Tenant) -> list[dict[str, Any]]:
    adapters = _adapters(session, tenant)
    bases = _base_models(session, {m["id"] for m in adapters})
    return bases + adapters + _fine_tuned(session, tenant)


def _adapter_entry(session: Session, tenant: Tenant, model: str) -> dict[str, Any] | None:
    """`model` when the adapter listing holds it (`name` at production, or `name@alias`)."""
    try:
        ref = adapter_refs.parse_model(model)
    except Unprocessable:
        return None
    if isinstance(ref.ref, int):  # `name@v3` is servable but not listed
        return None
    try:
        found = adapter_refs.resolve(session, tenant_id=tenant.id, model=ref)
    except NotFound:
        return None
    return model_object(model, found.adapter.created_at, tenant.slug)


def retrieve(session: Session, *, tenant: Tenant, model: str) -> dict[str, Any]:
    """One listed model; 404 `model_not_found` for anything else (another tenant's included)."""
    if names.parse(model) is not None:
        try:
            target = resolve.lookup(session, tenant.id, model)
        except NotFound:
            raise not_found(model) from None
        return model_object(model, target.created or utcnow(), tenant.slug)
    entry = _adapter_entry(session, tenant, model)
    if entry is not None:
        return entry
    base = session.scalars(select(BaseModel).where(BaseModel.name == model)).first()
    if base is None:
        raise not_found(model)
    return model_object(base.name, base.created_at, PLATFORM)


def delete(session: Session, *, actor: Principal, tenant: Tenant, model: str) -> dict[str, Any]:
    """Hide a fine-tuned model (and its checkpoints) from the list and the gateway."""
    parsed = names.parse(model)
    if parsed is None or parsed.step is not None:
        retrieve(session, tenant=tenant, model=model)  # 404 when it is not a model at all
        raise OpenAIError(
            400,
            f"'{model}' is not a fine-tuned model; only fine-tuned models "
            "(ft:<base>:<tenant>:<suffix>:<id>) can be deleted. Archive an adapter with the "
            "registry's API instead.",
            code="model_not_deletable",
            param="model",
        )
    found = resolve.live_job(session, tenant.id, model)
    if found is None:
        raise not_found(model)
    job, training = found
    job.model_deleted_at = utcnow()
    session.flush()
    announce(session, tenant.id, training.adapter_id)  # gateways stop serving it at once
    audit.record(
        session,
        actor=actor,
        action="fine_tuned_model.delete",
        target_type="fine_tuned_model",
        target_id=model,
        tenant_id=tenant.id,
        details={"job_id": str(job.id), "version_id": str(training.version_id)},
    )
    log.info("fine_tuned_model.deleted", tenant=tenant.slug, model=model)
    return {"id": model, "object": "model", "deleted": True}
