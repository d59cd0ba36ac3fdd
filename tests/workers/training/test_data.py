from __future__ import annotations

import random
from typing import Any

import pytest
from transformers import PreTrainedTokenizerFast

from tests.workers.training.toy import capital_rows
from workers.training.data import (
    IGNORE,
    Example,
    prompt_and_answer,
    prompt_ids,
    render_row,
    render_rows,
    split_heldout,
)
from workers.training.toolcalls import Answer

CHAT = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Capital of Peru?"},
        {"role": "assistant", "content": "Lima"},
        {"role": "user", "content": "Thanks"},
    ]
}


def target_runs(tokenizer: PreTrainedTokenizerFast, example: Example) -> list[str]:
    """Decoded maximal runs of trained positions."""
    runs: list[list[int]] = []
    previous = IGNORE
    for token, label in zip(example.input_ids, example.labels, strict=True):
        if label != IGNORE:
            assert label == token
            if previous == IGNORE:
                runs.append([])
            runs[-1].append(label)
        previous = label
    return [str(tokenizer.decode(run)) for run in runs]


def test_chat_labels_are_assistant_contents_and_end(tokenizer: PreTrainedTokenizerFast) -> None:
    example = render_row(CHAT, tokenizer, 512)
    assert example is not None
    assert target_runs(tokenizer, example) == ["Hello! How can I help?<|end|>", "Lima<|end|>"]
    # the input is the template's rendering up to the last assistant turn
    upto = CHAT["messages"][:5]
    assert tokenizer.decode(example.input_ids) == tokenizer.apply_chat_template(
        upto, tokenize=False
    )
    assert (
        example.n_target
        == len(tokenizer.encode("Hello! How can I help?")) + len(tokenizer.encode("Lima")) + 2
    )


def test_prompt_completion_masks_the_prompt(tokenizer: PreTrainedTokenizerFast) -> None:
    row = {"prompt": "Q: capital of Cuba?\nA:", "completion": " Havana"}
    example = render_row(row, tokenizer, 512)
    assert example is not None
    n_prompt = len(tokenizer.encode(row["prompt"]))
    assert example.labels[:n_prompt] == [IGNORE] * n_prompt
    assert target_runs(tokenizer, example) == [" Havana<|end|>"]
    assert example.input_ids[-1] == tokenizer.eos_token_id == 1


def test_truncation_from_the_right(tokenizer: PreTrainedTokenizerFast) -> None:
    full = render_row(CHAT, tokenizer, 512)
    assert full is not None
    first_target = next(i for i, label in enumerate(full.labels) if label != IGNORE)
    cut = render_row(CHAT, tokenizer, first_target + 2)
    assert cut is not None
    assert cut.input_ids == full.input_ids[: first_target + 2]
    assert cut.n_target == 2
    assert render_row(CHAT, tokenizer, first_target) is None
    rows: list[dict[str, Any]] = [CHAT, {"prompt": "x" * 400, "completion": "y"}]
    assert render_rows(rows, tokenizer, first_target + 2) == [cut]


def test_bad_rows_and_templates_are_refused(tokenizer: PreTrainedTokenizerFast) -> None:
    with pytest.raises(ValueError, match="assistant"):
        render_row({"messages": [{"role": "user", "content": "hi"}]}, tokenizer, 64)
    with pytest.raises(ValueError, match="prompt"):
        render_row({"text": "hi"}, tokenizer, 64)
    with pytest.raises(ValueError, match="role"):
        render_row({"messages": [{"role": "function", "content": "x"}]}, tokenizer, 64)
    saved = tokenizer.chat_template
    # renders the final message differently: not incremental
    tokenizer.chat_template = (
        "{% for m in messages %}{% if loop.last %}LAST {% endif %}{{ m['content'] }}\n{% endfor %}"
    )
    try:
        with pytest.raises(ValueError, match="not incremental"):
            render_row(CHAT, tokenizer, 64)
    finally:
        tokenizer.chat_template = saved


def test_split_is_deterministic_and_order_independent() -> None:
    rows = capital_rows(100, seed=1)
    train, heldout = split_heldout(rows, seed=7, fraction=0.1)
    assert len(heldout) == 10 and len(train) == 90
    shuffled = rows[:]
    random.Random(5).shuffle(shuffled)
    assert split_heldout(shuffled, seed=7, fraction=0.1) == (train, heldout)
    assert sorted(map(str, train + heldout)) == sorted(map(str, rows))
    assert split_heldout(rows, seed=8, fraction=0.1)[1] != heldout
    assert len(split_heldout(rows[:3], seed=0, fraction=0.01)[1]) == 1  # min_heldout
    assert len(split_heldout(rows, seed=0, fraction=0.5, max_heldout=4)[1]) == 4
    assert len(split_heldout(rows[:2], seed=0, min_heldout=5)[0]) == 1  # keeps one to train on
    with pytest.raises(ValueError):
        split_heldout(rows[:1], seed=0)


def test_prompt_and_answer_and_prompt_ids(tokenizer: PreTrainedTokenizerFast) -> None:
    prompt, answer = prompt_and_answer(CHAT)
    assert answer == Answer("Lima") and answer.text == "Lima" and prompt == CHAT["messages"][:4]
    assert prompt_and_answer({"prompt": "p", "completion": "c"}) == ("p", Answer("c"))
    ids = prompt_ids(CHAT, tokenizer)
    example = render_row(CHAT, tokenizer, 512)
    assert example is not None
    assert example.input_ids[: len(ids)] == ids
    assert tokenizer.decode(ids) == tokenizer.apply_chat_template(
        prompt, tokenize=False, add_generation_prompt=True
    )
    assert example.input_ids[len(ids) :] == tokenizer.encode("Lima") + [1]
