"""The automatic rollback of traffic splits (periodic task `loraplex.check_splits`, run by beat or
by the embedded server's in-process queue).

For each split, from the gateway's usage records since the split began: a candidate version whose
error rate (answers other than 200) is higher than production's by more than the policy's
margin, or whose p95 latency (successful answers) is above production's times the policy's
ratio, over at least `min_requests` on each side, rolls the split back to production only. The
event is recorded as automatic with the figures in its reason and details, audited, and
announced to the gateways. Below `min_requests` nothing is decided. Every check leaves its
outcome on the split (`last_check`). A split whose production was moved since it was set no
longer applies: it is cleared (automatic, with that reason).

Usage reaches the database in the gateways' batches (`usage_flush_seconds`), so the check sees
requests a second or so late.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.orm import Session

from registry.adapters.repository import AdapterRepository, VersionRepository
from registry.adapters.resolve import DEFAULT_ALIAS
from registry.auth.principal import Principal
from registry.db import utcnow
from registry.models import Adapter, Tenant
from registry.splits.repository import SplitRepository, VersionFigures, active_splits
from registry.splits.schemas import RollbackPolicy
from registry.splits.service import splits

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Verdict:
    decision: str  # "rolled_back" | "ok" | "insufficient"
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def roll_back(self) -> bool:
        return self.decision == "rolled_back"


def _shown(f: VersionFigures) -> dict[str, Any]:
    p95 = f.p95_ms
    return {
        "requests": f.requests,
        "errors": f.errors,
        "error_rate": round(f.error_rate, 4),
        "p95_ms": round(p95, 1) if p95 is not None else None,
    }


def judge(
    policy: RollbackPolicy,
    baseline: tuple[int, VersionFigures],
    candidates: Sequence[tuple[int, VersionFigures]],
) -> Verdict:
    """Pure: the verdict on (version number, figures) of production and each candidate."""
    base_n, base = baseline
    figures = {f"v{n}": _shown(f) for n, f in (baseline, *candidates)}
    need = policy.min_requests
    failures: list[str] = []
    short: list[str] = []
    for n, cand in candidates:
        if cand.requests < need or base.requests < need:
            short.append(
                f"v{n} {cand.requests} and production v{base_n} {base.requests} requests "
                f"(at least {need} each needed)"
            )
            continue
        margin = policy.max_error_rate_increase
        rise = cand.error_rate - base.error_rate
        if margin is not None and rise > margin + 1e-12:
            failures.append(
                f"v{n} error rate {cand.error_rate:.1%} ({cand.errors}/{cand.requests}) vs "
                f"production v{base_n} {base.error_rate:.1%} ({base.errors}/{base.requests}): "
                f"+{rise * 100:.1f} points, more than the {margin * 100:.1f} allowed"
            )
        ratio, c95, b95 = policy.max_latency_ratio, cand.p95_ms, base.p95_ms
        if ratio is not None and c95 is not None and b95 is not None and c95 > ratio * b95:
            failures.append(
                f"v{n} p95 latency {c95:.0f} ms vs production v{base_n} {b95:.0f} ms: "
                f"{c95 / max(b95, 1e-9):.2f}x, more than the {ratio:g}x allowed"
            )
    if failures:
        return Verdict("rolled_back", "automatic rollback: " + "; ".join(failures), figures)
    if short:
        return Verdict("insufficient", "not enough traffic yet: " + "; ".join(short), figures)
    return Verdict("ok", "candidates within the policy", figures)


@dataclass
class CheckResult:
    checked: int = 0
    rolled_back: int = 0
    cleared_stale: int = 0


def check_splits(
    open_session: Callable[[], AbstractContextManager[Session]], *, actor: Principal
) -> CheckResult:
    """Check every split on the platform, one transaction each (one failing split does not
    stop the others)."""
    with open_session() as session:
        pending = active_splits(session)
    out = CheckResult()
    for tenant_id, adapter_id in pending:
        try:
            with open_session() as session:
                outcome = check_one(session, tenant_id, adapter_id, actor=actor)
        except Exception:
            log.exception("split.check_failed", tenant=str(tenant_id), adapter=str(adapter_id))
            continue
        out.checked += 1
        out.rolled_back += outcome == "rolled_back"
        out.cleared_stale += outcome == "stale"
    return out


def check_one(
    session: Session, tenant_id: uuid.UUID, adapter_id: uuid.UUID, *, actor: Principal
) -> str:
    """'rolled_back', 'stale' (cleared), 'ok', 'insufficient', 'no_policy' or 'gone'."""
    tenant, adapter = session.get(Tenant, tenant_id), session.get(Adapter, adapter_id)
    if tenant is None or adapter is None:
        return "gone"
    AdapterRepository(session, tenant_id).lock(adapter)  # the order `splits.set` locks in
    split = SplitRepository(session, tenant_id).get(adapter_id, lock=True)
    if split is None:
        return "gone"
    production = VersionRepository(session, tenant_id).get_by_alias(adapter_id, DEFAULT_ALIAS)
    baseline = split.arms[0]
    if production is None or production.id != split.baseline_id:
        now_on = f"v{production.version}" if production is not None else "nothing"
        why = (
            f"production moved from v{baseline['version']} to {now_on} while the split was "
            "set; the split no longer applied"
        )
        splits.clear(
            session, actor=actor, tenant=tenant, adapter=adapter, reason=why, automatic=True
        )
        log.info("split.cleared_stale", tenant=tenant.slug, adapter=adapter.name, reason=why)
        return "stale"
    if split.rollback is None:
        return "no_policy"
    policy = RollbackPolicy.model_validate(split.rollback)
    ids = [uuid.UUID(a["version_id"]) for a in split.arms]
    figures = SplitRepository(session, tenant_id).figures(adapter_id, ids, split.started_at)
    numbers = [int(a["version"]) for a in split.arms]
    verdict = judge(
        policy,
        (numbers[0], figures[ids[0]]),
        [(n, figures[i]) for n, i in zip(numbers[1:], ids[1:], strict=True)],
    )
    check = {
        "at": utcnow().isoformat(),
        "decision": verdict.decision,
        "reason": verdict.reason,
        "figures": verdict.figures,
    }
    if verdict.roll_back:
        details = {"figures": verdict.figures, "policy": split.rollback}
        splits.clear(
            session,
            actor=actor,
            tenant=tenant,
            adapter=adapter,
            reason=verdict.reason,
            automatic=True,
            details=details,
        )
        log.warning(
            "split.rolled_back", tenant=tenant.slug, adapter=adapter.name, reason=verdict.reason
        )
    else:
        split.last_check = check
    return verdict.decision
