from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from tests.workers.training.toy import build_model, build_tokenizer, capital_rows, chat_text
from workers.evals import score as score_module
from workers.evals.score import OUTPUT_CHARS, SuiteScore, score_suite
from workers.training.data import IGNORE, Example, prompt_ids, render_row
from workers.training.evaluate import generate_answers
from workers.training.loop import mean_loss

NEW_TOKENS = 6
UNREACHABLE = "Paris " * 40  # 240 characters: more than 6 tokens of this vocabulary can spell


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer(chat_text(capital_rows(200)))


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    return build_model(seed=1, init_std=0.1)


def run(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    rows: list[dict[str, Any]],
    batch_size: int = 3,
    **kw: Any,
) -> SuiteScore:
    return score_suite(
        model,
        tokenizer,
        rows,
        batch_size=batch_size,
        pad_id=0,
        max_new_tokens=NEW_TOKENS,
        schema_steps=10_000,
        **kw,
    )


def question(country: str) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "Capital only."},
        {"role": "user", "content": f"What is the capital of {country}?"},
    ]


def greedy(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, messages: Any) -> str:
    """The model's answer, prompted as serving renders a request (the whole template at once)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert isinstance(text, str)
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    out = generate_answers(model, tokenizer, [ids], batch_size=1, pad_id=0, max_new_tokens=6)
    return out[0]


def test_generation_uses_the_serving_prompt(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast
) -> None:
    countries = ["France", "Japan", "Peru", "Kenya"]
    expected = [greedy(model, tokenizer, question(c)) for c in countries]
    assert len({e.strip() for e in expected}) > 1  # the prompts matter: the test can fail
    rows = [
        {"id": c, "messages": question(c), "checks": [{"type": "exact", "value": e}]}
        for c, e in zip(countries, expected, strict=True)
    ]
    rows[0]["checks"] = [{"type": "exact", "value": expected[1]}]  # someone else's answer
    rows.append(
        {"messages": question("Chile"), "checks": [{"type": "exact", "value": UNREACHABLE}]}
    )
    result = run(model, tokenizer, rows)
    details = result.details["rows"]
    assert [d["output"] for d in details[:4]] == expected
    assert [d["passed"] for d in details] == [expected[0].strip() == expected[1].strip()] + [
        True,
        True,
        True,
        False,
    ]
    assert [d["id"] for d in details] == [*countries, None]
    assert [d["i"] for d in details] == [0, 1, 2, 3, 4]
    assert result.metrics["exact"] == result.metrics["pass_rate"] == 3 / 5


def test_metric_names_and_values_follow_details(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast
) -> None:
    rows: list[dict[str, Any]] = [
        {"messages": question("Spain"), "checks": [{"type": "contains", "value": UNREACHABLE}]},
        {"messages": question("Italy"), "checks": [{"type": "not_contains", "value": UNREACHABLE}]},
        {
            "messages": question("Egypt"),
            "checks": [
                {"type": "regex", "pattern": r"^[\s\S]*$"},
                {"type": "tool_call", "calls": []},
                {"type": "loss", "reference": "Cairo", "max_loss": 100.0},
            ],
        },
        {
            "messages": question("Cuba"),
            "checks": [
                {"type": "json_schema", "schema": {"type": "object"}},
                {"type": "loss", "reference": "Havana", "max_loss": 0.001},
            ],
        },
    ]
    result = run(model, tokenizer, rows)
    details = result.details["rows"]
    kinds = {"contains", "not_contains", "regex", "tool_call", "json_schema", "loss"}
    assert set(result.metrics) == kinds | {"pass_rate", "mean_loss", "rows"}
    assert all(isinstance(v, float) for v in result.metrics.values())
    assert result.metrics["rows"] == 4.0
    assert result.metrics["pass_rate"] == sum(d["passed"] for d in details) / 4
    for kind in kinds:
        having = [d["checks"][kind] for d in details if kind in d["checks"]]
        assert result.metrics[kind] == sum(having) / len(having)
    assert [set(d["checks"]) for d in details] == [
        {"contains"},
        {"not_contains"},
        {"regex", "tool_call", "loss"},
        {"json_schema", "loss"},
    ]
    assert [d["passed"] for d in details] == [False, True, True, False]
    assert details[3]["checks"] == {"json_schema": False, "loss": False}
    assert details[0]["loss"] is None and details[2]["loss"] > 0
    assert result.metrics["mean_loss"] == pytest.approx(
        (details[2]["loss"] + details[3]["loss"]) / 2
    )


def test_row_loss_is_mean_loss_of_the_answer_turn(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast
) -> None:
    history = [
        *question("Norway"),
        {"role": "assistant", "content": "Oslo"},
        {"role": "user", "content": "And of Nepal?"},
    ]
    full = {"messages": [*history, {"role": "assistant", "content": "Kathmandu"}]}
    rendered = render_row(full, tokenizer, 512)
    assert rendered is not None
    n_prompt = len(prompt_ids(full, tokenizer))
    answer_only = Example(rendered.input_ids, [IGNORE] * n_prompt + rendered.labels[n_prompt:])
    assert answer_only.n_target < rendered.n_target  # the earlier "Oslo" turn is left out
    expected, _ = mean_loss(model, [answer_only], batch_size=1, pad_id=0)
    short = render_row(
        {"messages": [*question("Peru"), {"role": "assistant", "content": "Lima"}]}, tokenizer, 512
    )
    assert short is not None
    expected_short, _ = mean_loss(model, [short], batch_size=1, pad_id=0)

    def loss_row(messages: list[dict[str, Any]], reference: str, max_loss: float) -> dict[str, Any]:
        return {
            "messages": messages,
            "checks": [{"type": "loss", "reference": reference, "max_loss": max_loss}],
        }

    rows = [
        loss_row(history, "Kathmandu", expected + 0.01),
        loss_row(history, "Kathmandu", expected - 0.01),
        loss_row(question("Peru"), "Lima", expected_short + 0.01),
    ]
    for batch_size in (1, 3):  # padded batches score each row as it scores alone
        details = run(model, tokenizer, rows, batch_size=batch_size).details["rows"]
        assert details[0]["loss"] == pytest.approx(expected, abs=1e-4)
        assert details[1]["loss"] == pytest.approx(expected, abs=1e-4)
        assert details[2]["loss"] == pytest.approx(expected_short, abs=1e-4)
        assert [d["passed"] for d in details] == [True, False, True]
        assert [d["output"] for d in details] == [None, None, None]  # loss only: no generation


def test_prompt_rows_score_completion_and_eos(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast
) -> None:
    prompt = "The quick brown fox jumps over the"
    example = render_row({"prompt": prompt, "completion": " lazy dog."}, tokenizer, 512)
    assert example is not None
    expected, _ = mean_loss(model, [example], batch_size=1, pad_id=0)
    ids = list(tokenizer.encode(prompt, add_special_tokens=True))
    generated = generate_answers(model, tokenizer, [ids], batch_size=1, pad_id=0, max_new_tokens=6)
    rows: list[dict[str, Any]] = [
        {
            "prompt": prompt,
            "checks": [
                {"type": "loss", "reference": " lazy dog.", "max_loss": 50.0},
                {"type": "exact", "value": generated[0]},
            ],
        },
        {"prompt": prompt, "checks": [{"type": "exact", "value": UNREACHABLE}]},
    ]
    result = run(model, tokenizer, rows)
    details = result.details["rows"]
    assert details[0]["loss"] == pytest.approx(expected, abs=1e-4)
    assert details[0]["output"] == details[1]["output"] == generated[0]
    assert [d["passed"] for d in details] == [True, False]
    assert result.metrics["mean_loss"] == pytest.approx(expected, abs=1e-4)


def test_checks_read_the_whole_answer_details_keep_300_chars(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, monkeypatch: pytest.MonkeyPatch
) -> None:
    long = "word " * 100
    calls: list[int] = []

    def fake(_m: Any, _t: Any, prompts: list[list[int]], **_: Any) -> list[str]:
        calls.append(len(prompts))
        return [long] * len(prompts)

    monkeypatch.setattr(score_module, "generate_answers", fake)
    rows = [
        {"messages": question("Iran"), "checks": [{"type": "exact", "value": long}]},
        {
            "messages": question("Iran"),
            "checks": [{"type": "loss", "reference": "Tehran", "max_loss": 99.0}],
        },
    ]
    progress: list[tuple[int, int]] = []
    details = run(
        model, tokenizer, rows, batch_size=1, on_progress=lambda *a: progress.append(a)
    ).details["rows"]
    assert details[0]["passed"] and len(details[0]["output"]) == OUTPUT_CHARS
    assert details[1]["output"] is None
    assert calls == [1]  # only the row that reads generated text
    assert progress == [(1, 2), (2, 2)]


def test_model_mode_is_restored(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast
) -> None:
    rows = [
        {
            "messages": question("Chile"),
            "checks": [
                {"type": "loss", "reference": "Santiago", "max_loss": 9.0},
                {"type": "contains", "value": ""},
            ],
        }
    ]
    model.train()
    try:
        result = run(model, tokenizer, rows)
        assert model.training
    finally:
        model.eval()
    assert math.isfinite(result.details["rows"][0]["loss"])


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {"messages": question("Peru"), "checks": [{"type": "fuzzy"}]},
            "suite row 1: unknown check",
        ),
        ({"messages": question("Peru"), "checks": []}, "suite row 1: 'checks'"),
        (
            {
                "messages": question("Peru"),
                "tools": [{"type": "function", "function": {"name": "lookup"}}],
                "checks": [{"type": "tool_call", "calls": []}],
            },
            "suite row 1: the chat template does not render 'tools'",
        ),
        (
            {
                "messages": question("Peru"),
                "checks": [{"type": "loss", "reference": "a", "max_loss": 1}] * 2,
            },
            "suite row 1: at most one loss check",
        ),
    ],
)
def test_rows_that_cannot_be_scored_are_named(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, row: dict[str, Any], message: str
) -> None:
    good = {"messages": question("Peru"), "checks": [{"type": "contains", "value": ""}]}
    with pytest.raises(ValueError, match=message):
        run(model, tokenizer, [good, row])
