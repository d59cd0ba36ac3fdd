"""The gate on eval suites: primary {suite, metric}, suite guards, and the forgetting guard."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from registry.adapters.promotion import PromotionPolicy, decide_suites

HELD = {"eval_loss": 1.0, "exact_match": 0.5}


def _auto(**kw: object) -> PromotionPolicy:
    return PromotionPolicy.model_validate({"mode": "auto", **kw})


def test_primary_on_a_pinned_suite() -> None:
    policy = _auto(primary={"suite": "golden", "metric": "pass_rate"})
    cand = {"heldout": HELD, "golden": {"pass_rate": 0.8}}
    inc = {"heldout": HELD, "golden": {"pass_rate": 0.6}}
    d = decide_suites(policy, cand, inc, "production v2")
    assert d.promote and d.passed
    assert "golden/pass_rate 0.8 vs 0.6" in d.reason
    worse = decide_suites(policy, inc, cand, "production v2")
    assert not worse.promote and "lost to production v2 on golden/pass_rate" in worse.reason


def test_a_missing_primary_suite_is_not_promoted() -> None:
    policy = _auto(primary={"suite": "golden", "metric": "pass_rate"})
    d = decide_suites(policy, {"heldout": HELD}, {"heldout": HELD}, "the base model")
    assert not d.promote and not d.passed
    assert "golden/pass_rate missing" in d.reason


def test_suite_guard_names_every_number() -> None:
    policy = _auto(guards=[{"suite": "golden", "metric": "contains", "tolerance": 0.05}])
    cand = {"heldout": {**HELD, "eval_loss": 0.5}, "golden": {"contains": 0.7}}
    inc = {"heldout": HELD, "golden": {"contains": 0.8}}
    d = decide_suites(policy, cand, inc, "production v1")
    assert not d.promote
    assert "golden/contains 0.7 vs 0.8" in d.reason and "eval_loss 0.5 vs 1" in d.reason
    loose = _auto(guards=[{"suite": "golden", "metric": "contains", "tolerance": 0.2}])
    assert decide_suites(loose, cand, inc, "production v1").promote


def test_forgetting_guard_against_the_base_model() -> None:
    """Better on its own held-out loss, worse than the base model on the general suite."""
    cand = {"heldout": {**HELD, "eval_loss": 0.4}, "general": {"pass_rate": 0.5, "loss": 0.5}}
    prod = {"heldout": HELD}
    base = {"heldout": {**HELD, "eval_loss": 3.0}, "general": {"pass_rate": 1.0, "loss": 1.0}}
    d = decide_suites(_auto(), cand, prod, "production v1", base=base, forgetting_tolerance=0.1)
    assert not d.promote
    assert "general/pass_rate 0.5 vs 1 (the base model)" in d.reason
    assert "fell behind the base model on its general suite by more than 0.1" in d.reason
    kept = {**cand, "general": {"pass_rate": 0.95, "loss": 0.92}}
    d = decide_suites(_auto(), kept, prod, "production v1", base=base, forgetting_tolerance=0.1)
    assert d.promote, d.reason


def test_no_general_suite_no_guard_and_policy_tolerance_wins() -> None:
    cand = {"heldout": {**HELD, "eval_loss": 0.4}, "general": {"pass_rate": 0.5}}
    base = {"heldout": HELD, "general": {"pass_rate": 1.0}}
    assert decide_suites(_auto(), cand, base, "b", base=base).promote  # no guard configured
    loose = _auto(forgetting_tolerance=0.6)
    assert decide_suites(loose, cand, base, "b", base=base, forgetting_tolerance=0.1).promote


def test_an_unscored_candidate_cannot_pass_the_forgetting_guard() -> None:
    cand = {"heldout": {**HELD, "eval_loss": 0.4}}
    base = {"heldout": HELD, "general": {"pass_rate": 1.0}}
    d = decide_suites(_auto(), cand, base, "b", base=base, forgetting_tolerance=0.1)
    assert not d.promote and "general/pass_rate unscored vs 1" in d.reason


def test_manual_policy_passes_without_promoting() -> None:
    d = decide_suites(
        PromotionPolicy(), {"heldout": {**HELD, "eval_loss": 0.4}}, {"heldout": HELD}, "b"
    )
    assert not d.promote and d.passed and "would win" in d.reason


@pytest.mark.parametrize(
    "bad",
    [
        {"primary": {"suite": "heldout", "metric": "pass_rate"}},
        {"primary": {"suite": "golden", "metric": "eval_loss"}},
        {"guards": [{"suite": "golden", "metric": "nope", "tolerance": 0.1}]},
        {"guards": [{"suite": "golden", "metric": "contains", "tolerance": -1}]},
        {"forgetting_tolerance": 2},
    ],
)
def test_policy_refuses_unknown_pairs(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PromotionPolicy.model_validate(bad)
