"""The promotion gate: does a freshly trained version beat the one serving `production`?

Pure functions over eval metrics, so the rule is testable without training anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

LOWER_IS_BETTER = frozenset({"eval_loss", "perplexity"})
# tool calling (held-out rows that call tools, or answer in text while tools are offered)
TOOL_METRICS = ("tool_name_accuracy", "tool_args_valid", "tool_call_exact", "no_call_accuracy")
KNOWN_METRICS = frozenset({"eval_loss", "perplexity", "exact_match", "json_valid", *TOOL_METRICS})


class PromotionPolicy(BaseModel):
    """`manual`: a person promotes. `auto`: promote when the candidate beats the incumbent
    (the `production` version, or the base model when nothing is in production yet) by
    `margin` on `primary_metric`, and is not worse than it by more than `tolerance` on
    each of `guard_metrics` (absolute, in each metric's own units)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["manual", "auto"] = "manual"
    primary_metric: str = "eval_loss"
    margin: float = Field(
        default=0.0, ge=0.0, allow_inf_nan=False, description="required improvement, absolute"
    )
    # each guarded only where both sides have it (a plain dataset has no tool metrics)
    guard_metrics: list[str] = Field(
        default_factory=lambda: ["exact_match", "json_valid", *TOOL_METRICS]
    )
    tolerance: float = Field(
        default=0.02, ge=0.0, allow_inf_nan=False, description="allowed regression, absolute"
    )

    @model_validator(mode="after")
    def _known(self) -> PromotionPolicy:
        unknown = sorted({self.primary_metric, *self.guard_metrics} - KNOWN_METRICS)
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {sorted(KNOWN_METRICS)}")
        return self


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    checks: list[dict[str, Any]] = field(default_factory=list)


def _better(metric: str, candidate: float, incumbent: float) -> float:
    """How much better the candidate is (positive: better), whatever the metric's direction."""
    return incumbent - candidate if metric in LOWER_IS_BETTER else candidate - incumbent


def decide(
    policy: PromotionPolicy,
    candidate: dict[str, float],
    incumbent: dict[str, float],
    incumbent_label: str,
) -> Decision:
    p = policy.primary_metric
    if p not in candidate or p not in incumbent:
        return Decision(False, f"{p} missing for the candidate or {incumbent_label}; not promoted")
    gain = _better(p, candidate[p], incumbent[p])
    checks = [
        {
            "metric": p,
            "candidate": candidate[p],
            "incumbent": incumbent[p],
            "gain": gain,
            "needed": policy.margin,
            "ok": gain > policy.margin or (policy.margin > 0 and math.isclose(gain, policy.margin)),
        }
    ]
    for metric in policy.guard_metrics:
        if metric == p or metric not in candidate or metric not in incumbent:
            continue
        change = _better(metric, candidate[metric], incumbent[metric])
        checks.append(
            {
                "metric": metric,
                "candidate": candidate[metric],
                "incumbent": incumbent[metric],
                "gain": change,
                "needed": -policy.tolerance,
                "ok": change >= -policy.tolerance - 1e-12,
            }
        )
    summary = "; ".join(
        f"{c['metric']} {c['candidate']:.4g} vs {c['incumbent']:.4g}" for c in checks
    )
    failed = [str(c["metric"]) for c in checks if not c["ok"]]
    if policy.mode == "manual":
        verdict = "would win" if not failed else f"would lose on {', '.join(failed)}"
        return Decision(
            False, f"manual policy ({verdict} against {incumbent_label}): {summary}", checks
        )
    if failed:
        return Decision(
            False, f"lost to {incumbent_label} on {', '.join(failed)}: {summary}", checks
        )
    return Decision(True, f"beat {incumbent_label}: {summary}", checks)
