from __future__ import annotations

import pytest
from pydantic import ValidationError

from registry.adapters.promotion import PromotionPolicy, decide

INCUMBENT = {"eval_loss": 1.0, "perplexity": 2.72, "exact_match": 0.50, "json_valid": 0.90}


def _auto(**kw: object) -> PromotionPolicy:
    return PromotionPolicy.model_validate({"mode": "auto", **kw})


def test_a_clear_winner_is_promoted_and_the_reason_gives_the_numbers() -> None:
    d = decide(_auto(), {**INCUMBENT, "eval_loss": 0.8}, INCUMBENT, "production v3")
    assert d.promote
    assert d.reason.startswith("beat production v3") and "eval_loss 0.8 vs 1" in d.reason


def test_equal_is_not_better() -> None:
    assert not decide(_auto(), dict(INCUMBENT), INCUMBENT, "p").promote


def test_margin_is_required_on_the_primary_metric() -> None:
    policy = _auto(margin=0.1)
    assert not decide(policy, {**INCUMBENT, "eval_loss": 0.95}, INCUMBENT, "p").promote
    assert decide(policy, {**INCUMBENT, "eval_loss": 0.85}, INCUMBENT, "p").promote


def test_higher_is_better_metrics_as_primary() -> None:
    policy = _auto(primary_metric="exact_match", guard_metrics=[])
    assert decide(policy, {**INCUMBENT, "exact_match": 0.6}, INCUMBENT, "p").promote
    assert not decide(policy, {**INCUMBENT, "exact_match": 0.4}, INCUMBENT, "p").promote


def test_a_guard_metric_regressing_beyond_tolerance_blocks() -> None:
    cand = {**INCUMBENT, "eval_loss": 0.5, "json_valid": 0.80}
    d = decide(_auto(tolerance=0.05), cand, INCUMBENT, "production v1")
    assert not d.promote and "lost to production v1 on json_valid" in d.reason
    assert decide(_auto(tolerance=0.2), cand, INCUMBENT, "p").promote


def test_guard_metrics_missing_on_one_side_are_skipped() -> None:
    cand = {"eval_loss": 0.5, "exact_match": 0.5}
    assert decide(_auto(), cand, {"eval_loss": 1.0, "exact_match": 0.5}, "p").promote


def test_manual_never_promotes_but_says_what_would_happen() -> None:
    d = decide(PromotionPolicy(), {**INCUMBENT, "eval_loss": 0.1}, INCUMBENT, "the base model")
    assert not d.promote and d.reason.startswith("manual policy (would win against the base")


def test_missing_primary_is_not_promoted() -> None:
    d = decide(_auto(), {"exact_match": 1.0}, INCUMBENT, "p")
    assert not d.promote and "missing" in d.reason


def test_unknown_metric_names_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown metrics"):
        _auto(guard_metrics=["bleu"])


def test_default_guards_tool_calling_when_both_sides_have_it() -> None:
    """A lower loss does not buy a version that calls tools worse; plain datasets (no tool
    metrics on either side) are gated as before."""
    incumbent = {**INCUMBENT, "tool_call_exact": 0.6, "no_call_accuracy": 0.9}
    worse = {**incumbent, "eval_loss": 0.5, "tool_call_exact": 0.3}
    d = decide(_auto(), worse, incumbent, "production v2")
    assert not d.promote and "lost to production v2 on tool_call_exact" in d.reason
    assert decide(_auto(), {**incumbent, "eval_loss": 0.5}, incumbent, "p").promote
    assert decide(_auto(), {**INCUMBENT, "eval_loss": 0.5}, INCUMBENT, "p").promote
    for metric in ("tool_name_accuracy", "tool_args_valid", "tool_call_exact", "no_call_accuracy"):
        assert _auto(primary_metric=metric).primary_metric == metric
