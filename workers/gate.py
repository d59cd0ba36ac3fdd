"""After training: store the evals (new version, base model, current production; held-out and
every eval suite) and let the adapter's promotion policy decide whether `production` moves (or,
with `canary_percent`, whether the candidate gets that share of production's traffic)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from registry.adapters.promotion import GENERAL, Decision, PromotionPolicy, decide_suites
from registry.aliases.repository import AliasRepository
from registry.aliases.service import aliases
from registry.auth.principal import Principal
from registry.db import utcnow
from registry.evals.schemas import EvalCreate
from registry.evals.service import evals
from registry.models import Adapter, AdapterVersion, Tenant
from registry.splits.schemas import RollbackPolicy
from registry.splits.service import splits
from registry.training.lifecycle import lifecycle
from registry.training.service import add_event
from workers.inputs import JobInputs
from workers.scoring import Scored
from workers.suites import SuiteScores


def record_suites(
    session: Session,
    *,
    actor: Principal,
    tenant: Tenant,
    adapter: Adapter,
    number: int,
    suites: SuiteScores,
    job_id: str,
) -> None:
    """The suite scores computed by this job (cached ones are already stored)."""
    for new in suites.new:
        version = new.version if new.version is not None else number
        extra = {"scored_for": f"v{number}"} if version != number else {}
        evals.record(
            session,
            actor=actor,
            tenant=tenant,
            adapter=adapter,
            number=version,
            data=EvalCreate(
                suite=new.spec.label,
                subject=new.subject,  # type: ignore[arg-type]
                metrics=new.metrics,
                details={**new.details, "job_id": job_id, "key": new.spec.key, **extra},
            ),
            suite_id=new.spec.suite.id,
        )


def record_and_decide(
    session: Session,
    *,
    actor: Principal,
    inputs: JobInputs,
    suite: str,
    scored: Scored,
    details: dict[str, Any],
) -> Decision:
    job, adapter, tenant = inputs.job, inputs.adapter, inputs.tenant
    number = inputs.version.version
    dataset_id = inputs.validation.id if inputs.validation else None
    held = scored.heldout

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

    record(number, "version", held["candidate"])
    record(number, "base_model", held["base_model"])
    production = inputs.production
    if production is not None and "production" in held:
        record(production.version, "version", held["production"], scored_for=f"v{number}")
    record_suites(
        session,
        actor=actor,
        tenant=tenant,
        adapter=adapter,
        number=number,
        suites=scored.suites,
        job_id=str(job.id),
    )
    version = lifecycle.mark_ready(session, job=job)

    policy = PromotionPolicy.model_validate(adapter.promotion_policy)
    if production is not None and "production" in held:
        incumbent, label = scored.subject("production"), f"production v{production.version}"
    else:
        incumbent, label = scored.subject("base_model"), "the base model"
    general = any(s.key == GENERAL for s in inputs.suites)
    decision = decide_suites(
        policy,
        scored.subject("candidate"),
        incumbent,
        label,
        base=scored.subject("base_model"),
        forgetting_tolerance=inputs.base.forgetting_tolerance if general else None,
    )
    current = AliasRepository(session, tenant.id).get(adapter.id, "production", lock=True)
    moved = (current.version_id if current else None) != (production.id if production else None)
    gate = decision
    if decision.promote and moved:
        decision = Decision(False, "production moved while this version was evaluated", [])
    canary = policy.canary_percent if decision.promote and current is not None else 0
    store_gate(version, gate, policy, promoted=decision.promote and not canary, canary=canary)
    kind = move_aliases(
        session,
        actor=actor,
        tenant=tenant,
        adapter=adapter,
        number=number,
        decision=decision,
        canary=canary,
        job_id=str(job.id),
    )
    if kind == "canary_started":
        decision = Decision(
            False,
            f"canary: v{number} takes {canary}% of production's traffic (split "
            f"production/candidate, rolled back automatically if worse); {decision.reason}",
            decision.checks,
        )
    add_event(
        session,
        job,
        kind,
        decision.reason,
        policy=policy.mode,
        checks=decision.checks,
        **({"canary_percent": canary} if canary else {}),
    )
    return decision


def move_aliases(
    session: Session,
    *,
    actor: Principal,
    tenant: Tenant,
    adapter: Adapter,
    number: int,
    decision: Decision,
    canary: int,
    job_id: str,
) -> str:
    """Where the gate's decision puts version `number`: `production` (a win), or `candidate`
    (a loss; or a win under a canary policy, with a split production/candidate of `canary`
    percent). The job event's kind."""
    why = f"job {job_id}: {decision.reason}"[:2000]
    promote = decision.promote and not canary
    aliases.set(
        session,
        actor=actor,
        tenant=tenant,
        adapter=adapter,
        alias="production" if promote else "candidate",
        number=number,
        reason=why,
    )
    if not decision.promote:
        return "not_promoted"
    if not canary:
        return "promoted"
    splits.set(
        session,
        actor=actor,
        tenant=tenant,
        adapter=adapter,
        weights={"production": 100 - canary, "candidate": canary},
        reason=f"job {job_id}: canary at {canary}%: {decision.reason}"[:2000],
        rollback=RollbackPolicy(),
    )
    return "canary_started"


def store_gate(
    version: AdapterVersion,
    decision: Decision,
    policy: PromotionPolicy,
    *,
    promoted: bool,
    canary: int = 0,
) -> None:
    """Kept on the version: a later manual promotion of a version that failed is an override."""
    version.gate = {
        "passed": decision.passed,
        "promote": promoted,
        **({"canary_percent": canary} if canary else {}),
        "reason": decision.reason,
        "checks": decision.checks,
        "policy": policy.mode,
        "at": utcnow().isoformat(),
    }
