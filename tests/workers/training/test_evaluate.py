from __future__ import annotations

import math
from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerFast

from tests.workers.training.conftest import MAX_LEN, Trained, fresh_lora
from tests.workers.training.toy import capital_rows
from workers.training.data import prompt_ids, render_rows
from workers.training.evaluate import generate_answers, score
from workers.training.lora import save_adapter

KEYS = {"eval_loss", "perplexity", "exact_match", "n_examples", "n_tokens"}


def test_score_keys_and_ranges(trained: Trained, tokenizer: PreTrainedTokenizerFast) -> None:
    tokenizer.padding_side = "right"
    metrics = score(
        trained.model,
        tokenizer,
        trained.heldout,
        trained.eval_set,
        batch_size=8,
        pad_id=0,
        max_generate=12,
        max_new_tokens=8,
    )
    assert set(metrics) == KEYS  # plain-text answers: no json_valid
    assert tokenizer.padding_side == "right"
    assert all(isinstance(v, float) for v in metrics.values())
    assert math.isclose(metrics["perplexity"], math.exp(metrics["eval_loss"]))
    assert 0.0 <= metrics["exact_match"] <= 1.0
    assert metrics["n_examples"] == len(trained.eval_set)
    assert metrics["n_tokens"] == sum(e.n_target for e in trained.eval_set)
    assert metrics["eval_loss"] == pytest.approx(trained.result.best_eval_loss, abs=1e-4)


def test_base_and_adapter_scores_differ(
    trained: Trained, tokenizer: PreTrainedTokenizerFast
) -> None:
    def run() -> dict[str, float]:
        return score(
            trained.model,
            tokenizer,
            trained.heldout,
            trained.eval_set,
            batch_size=8,
            pad_id=0,
            max_generate=4,
            max_new_tokens=4,
        )

    tuned = run()
    with trained.model.disable_adapter():
        base = run()
    assert base["eval_loss"] == pytest.approx(trained.untrained_loss, abs=1e-4)
    assert base["eval_loss"] > tuned["eval_loss"] + 1.0
    assert run() == tuned  # the adapter is back on


def test_several_loaded_adapters(
    trained: Trained, tokenizer: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    save_adapter(trained.model, tmp_path, base_model_name="toy/base-v1")
    model = fresh_lora()  # same base; its "default" adapter is untrained (B = 0)
    model.load_adapter(str(tmp_path), adapter_name="tuned")
    kwargs = {"batch_size": 8, "pad_id": 0, "max_generate": 4, "max_new_tokens": 4}
    untrained = score(model, tokenizer, trained.heldout, trained.eval_set, **kwargs)
    model.set_adapter("tuned")
    tuned = score(model, tokenizer, trained.heldout, trained.eval_set, **kwargs)
    assert untrained["eval_loss"] == pytest.approx(trained.untrained_loss, abs=1e-4)
    assert tuned["eval_loss"] == pytest.approx(trained.result.best_eval_loss, abs=1e-4)


def test_json_valid_only_for_json_answers(tokenizer: PreTrainedTokenizerFast) -> None:
    rows = capital_rows(6, seed=2, as_json=True)
    examples = render_rows(rows, tokenizer, MAX_LEN)
    metrics = score(
        fresh_lora(), tokenizer, rows, examples, batch_size=4, pad_id=0, max_new_tokens=6
    )
    assert set(metrics) == KEYS | {"json_valid"}
    assert 0.0 <= metrics["json_valid"] <= 1.0
    # a minority of JSON answers does not switch it on
    mixed = rows[:2] + capital_rows(4, seed=2)
    metrics = score(
        fresh_lora(), tokenizer, mixed, examples, batch_size=4, pad_id=0, max_new_tokens=2
    )
    assert "json_valid" not in metrics


def test_no_generation_scores_the_loss_only(tokenizer: PreTrainedTokenizerFast) -> None:
    """LORAPLEX_EVAL_MAX_GENERATE=0 is allowed: no exact match (it divided by zero before)."""
    rows = capital_rows(6, seed=2, as_json=True)
    examples = render_rows(rows, tokenizer, MAX_LEN)
    metrics = score(
        fresh_lora(),
        tokenizer,
        rows,
        examples,
        batch_size=4,
        pad_id=0,
        max_generate=0,
        max_new_tokens=6,
    )
    assert set(metrics) == KEYS - {"exact_match"}
    assert metrics["eval_loss"] > 0


def test_batched_generation_matches_one_by_one(
    trained: Trained, tokenizer: PreTrainedTokenizerFast
) -> None:
    prompts = [prompt_ids(row, tokenizer) for row in trained.heldout[:6]]
    kwargs = {"pad_id": 0, "max_new_tokens": 6}
    batched = generate_answers(trained.model, tokenizer, prompts, batch_size=6, **kwargs)
    single = [
        generate_answers(trained.model, tokenizer, [p], batch_size=1, **kwargs)[0] for p in prompts
    ]
    assert batched == single
    assert all("<|end|>" not in answer for answer in batched)
