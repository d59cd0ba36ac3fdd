"""After training: store the evals (new version, base model, current production) and let the
adapter's promotion policy decide whether `production` moves."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from registry.adapters.promotion import Decision, PromotionPolicy, decide
from registry.aliases.repository import AliasRepository
from registry.aliases.service import aliases
from registry.auth.principal import Principal
from registry.evals.schemas import EvalCreate
from registry.evals.service import evals
from registry.training.lifecycle import lifecycle
from registry.training.service import add_event
from workers.inputs import JobInputs


def record_and_decide(
    session: Session,
    *,
    actor: Principal,
    inputs: JobInputs,
    suite: str,
    scores: dict[str, dict[str, float]],
    details: dict[str, Any],
) -> Decision:
    """`scores` has "candidate", "base_model" and, when something serves, "production"."""
    job, adapter, tenant = inputs.job, inputs.adapter, inputs.tenant
    number = inputs.version.version
    dataset_id = inputs.validation.id if inputs.validation else None

    def record(version: int, subject: str, metrics: dict[str, float], **more: Any) -> None:
        evals.record(
            session,
            actor=actor,
            tenant=tenant,
            adapter=adapter,
            number=version,
            data=EvalCreate(
                suite=suite,
                subject=subject,  # type: ignore[arg-type]
                metrics=metrics,
                dataset_id=dataset_id,
                details={**details, "job_id": str(job.id), **more},
            ),
        )

    record(number, "version", scores["candidate"])
    record(number, "base_model", scores["base_model"])
    production = inputs.production
    if production is not None and "production" in scores:
        record(production.version, "version", scores["production"], scored_for=f"v{number}")
    lifecycle.mark_ready(session, job=job)

    policy = PromotionPolicy.model_validate(adapter.promotion_policy)
    if production is not None and "production" in scores:
        incumbent, label = scores["production"], f"production v{production.version}"
    else:
        incumbent, label = scores["base_model"], "the base model"
    decision = decide(policy, scores["candidate"], incumbent, label)
    current = AliasRepository(session, tenant.id).get(adapter.id, "production", lock=True)
    moved = (current.version_id if current else None) != (production.id if production else None)
    if decision.promote and moved:
        decision = Decision(False, "production moved while this version was evaluated", [])
    alias = "production" if decision.promote else "candidate"
    aliases.set(
        session,
        actor=actor,
        tenant=tenant,
        adapter=adapter,
        alias=alias,
        number=number,
        reason=f"job {job.id}: {decision.reason}",
    )
    add_event(
        session,
        job,
        "promoted" if decision.promote else "not_promoted",
        decision.reason,
        policy=policy.mode,
        checks=decision.checks,
    )
    return decision
