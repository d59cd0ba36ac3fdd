"""The promotion gate: does a freshly trained version beat the one serving `production`, and
has it kept what the base model could do?

Pure functions over eval metrics, so the rule is testable without training anything. Scores
are per suite: "heldout" (the version's held-out split), "general" (the base model's general
suite, the forgetting guard's) and each suite pinned to the adapter, by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

HELDOUT = "heldout"
GENERAL = "general"
LOWER_IS_BETTER = frozenset({"eval_loss", "perplexity", "mean_loss"})
# tool calling (held-out rows that call tools, or answer in text while tools are offered)
TOOL_METRICS = ("tool_name_accuracy", "tool_args_valid", "tool_call_exact", "no_call_accuracy")
KNOWN_METRICS = frozenset({"eval_loss", "perplexity", "exact_match", "json_valid", *TOOL_METRICS})
# an eval suite's metrics: the share of rows passing (all checks, or each kind) and mean loss
CHECK_KINDS = ("exact", "contains", "not_contains", "regex", "json_schema", "tool_call", "loss")
SHARE_METRICS = ("pass_rate", *CHECK_KINDS)
SUITE_METRICS = frozenset({*SHARE_METRICS, "mean_loss"})

Scores = dict[str, dict[str, float]]  # suite -> metric -> value


class SuiteMetric(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suite: str = Field(
        min_length=1,
        max_length=100,
        description="'heldout', 'general' (the base model's general suite) or a pinned suite",
    )
    metric: str = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _known(self) -> SuiteMetric:
        known = KNOWN_METRICS if self.suite == HELDOUT else SUITE_METRICS
        if self.metric not in known:
            raise ValueError(
                f"unknown metric '{self.metric}' for suite '{self.suite}'; known: {sorted(known)}"
            )
        return self


class SuiteGuard(SuiteMetric):
    tolerance: float = Field(
        default=0.02, ge=0.0, allow_inf_nan=False, description="allowed regression, absolute"
    )


class PromotionPolicy(BaseModel):
    """`manual`: a person promotes. `auto`: promote when the candidate beats the incumbent
    (the `production` version, or the base model when nothing is in production yet) by
    `margin` on the primary metric, is not worse than it by more than each guard's tolerance,
    and has not fallen behind the base model on the base model's general suite by more than the
    forgetting tolerance.

    The primary metric is `primary` (a suite and metric) or, when that is unset, the held-out
    `primary_metric`; `guard_metrics` with `tolerance` guard the held-out scores, `guards` any
    suite's (absolute, in each metric's own units). With `canary_percent`, a win starts a canary
    (workers/gate.py) instead of moving `production`."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["manual", "auto"] = "manual"
    primary_metric: str = "eval_loss"
    primary: SuiteMetric | None = None
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
    guards: list[SuiteGuard] = Field(default_factory=list, max_length=32)
    forgetting_tolerance: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="allowed drop below the base model on its general suite (null: the base "
        "model's own setting)",
    )
    canary_percent: int = Field(
        default=0,
        ge=0,
        le=99,
        description="a winning candidate gets the `candidate` alias and this share of "
        "production's traffic (a traffic split production/candidate, sticky per end user, "
        "rolled back automatically if worse) instead of all of it; 0: production moves at once",
    )

    @model_validator(mode="after")
    def _known(self) -> PromotionPolicy:
        unknown = sorted({self.primary_metric, *self.guard_metrics} - KNOWN_METRICS)
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {sorted(KNOWN_METRICS)}")
        return self

    def primary_pair(self) -> tuple[str, str]:
        return (
            (self.primary.suite, self.primary.metric)
            if self.primary
            else (HELDOUT, self.primary_metric)
        )


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every check held (a manual policy passes without promoting)."""
        return bool(self.checks) and all(c["ok"] for c in self.checks)


def _better(metric: str, candidate: float, incumbent: float) -> float:
    """How much better the candidate is (positive: better), whatever the metric's direction."""
    return incumbent - candidate if metric in LOWER_IS_BETTER else candidate - incumbent


def _label(suite: str, metric: str) -> str:
    return metric if suite == HELDOUT else f"{suite}/{metric}"


def _check(
    suite: str,
    metric: str,
    cand: float,
    inc: float,
    needed: float,
    against: str,
    *,
    primary: bool = False,
) -> dict[str, Any]:
    """The primary check must gain more than `needed` (or exactly a positive margin); a guard
    (`needed` = -tolerance) may lose at most its tolerance."""
    gain = _better(metric, cand, inc)
    if primary:
        ok = gain > needed or (needed > 0 and math.isclose(gain, needed))
    else:
        ok = gain >= needed - 1e-12
    return {
        "suite": suite,
        "metric": metric,
        "candidate": cand,
        "incumbent": inc,
        "against": against,
        "gain": gain,
        "needed": needed,
        "ok": ok,
    }


def decide(
    policy: PromotionPolicy,
    candidate: dict[str, float],
    incumbent: dict[str, float],
    incumbent_label: str,
) -> Decision:
    """The gate on held-out scores alone (a version scored on no suite)."""
    return decide_suites(policy, {HELDOUT: candidate}, {HELDOUT: incumbent}, incumbent_label)


def decide_suites(
    policy: PromotionPolicy,
    candidate: Scores,
    incumbent: Scores,
    incumbent_label: str,
    *,
    base: Scores | None = None,
    forgetting_tolerance: float | None = None,
) -> Decision:
    """`base`: the base model's scores, for the forgetting guard on the "general" suite;
    `forgetting_tolerance` None: the base model has no general suite (no guard)."""
    suite, p = policy.primary_pair()
    cand_p, inc_p = candidate.get(suite, {}).get(p), incumbent.get(suite, {}).get(p)
    if cand_p is None or inc_p is None:
        return Decision(
            False,
            f"{_label(suite, p)} missing for the candidate or {incumbent_label}; not promoted",
        )
    checks = [_check(suite, p, cand_p, inc_p, policy.margin, incumbent_label, primary=True)]
    guards = [(HELDOUT, m, policy.tolerance) for m in policy.guard_metrics]
    guards += [(g.suite, g.metric, g.tolerance) for g in policy.guards]
    for g_suite, metric, allowed in guards:
        c, i = candidate.get(g_suite, {}).get(metric), incumbent.get(g_suite, {}).get(metric)
        if (g_suite, metric) == (suite, p) or c is None or i is None:
            continue
        checks.append(_check(g_suite, metric, c, i, -allowed, incumbent_label))
    tolerance = policy.forgetting_tolerance
    if tolerance is None:
        tolerance = forgetting_tolerance
    if forgetting_tolerance is not None and tolerance is not None:
        checks += _forgetting(candidate.get(GENERAL), (base or {}).get(GENERAL), tolerance)
    summary = "; ".join(
        f"{_label(c['suite'], c['metric'])} {_num(c['candidate'])} vs {_num(c['incumbent'])}"
        + ("" if c["against"] == incumbent_label else f" ({c['against']})")
        for c in checks
    )
    failed = [_label(c["suite"], c["metric"]) for c in checks if not c["ok"]]
    forgot = [c for c in checks if not c["ok"] and c["suite"] == GENERAL]
    if policy.mode == "manual":
        verdict = "would win" if not failed else f"would lose on {', '.join(failed)}"
        return Decision(
            False, f"manual policy ({verdict} against {incumbent_label}): {summary}", checks
        )
    if failed:
        also = (
            f"; fell behind the base model on its general suite by more than {tolerance:g}"
            if forgot
            else ""
        )
        return Decision(
            False, f"lost to {incumbent_label} on {', '.join(failed)}{also}: {summary}", checks
        )
    return Decision(True, f"beat {incumbent_label}: {summary}", checks)


def _num(value: float | None) -> str:
    return "unscored" if value is None else f"{value:.4g}"


def _forgetting(
    candidate: dict[str, float] | None, base: dict[str, float] | None, tolerance: float
) -> list[dict[str, Any]]:
    """Every share metric of the general suite, against the base model: a missing score fails
    (a candidate that was not scored on the general suite cannot show it forgot nothing)."""
    if not base or not candidate:
        return [
            {
                "suite": GENERAL,
                "metric": "pass_rate",
                "candidate": (candidate or {}).get("pass_rate"),
                "incumbent": (base or {}).get("pass_rate"),
                "against": "the base model",
                "gain": None,
                "needed": -tolerance,
                "ok": False,
            }
        ]
    return [
        _check(GENERAL, m, candidate[m], base[m], -tolerance, "the base model")
        for m in SHARE_METRICS
        if m in base and m in candidate
    ]
