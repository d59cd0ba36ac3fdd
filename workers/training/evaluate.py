"""Score a model on held-out rows: loss, perplexity, exact match of greedy answers, JSON validity.

Whatever adapter state the caller set up is what gets scored: the active LoRA adapter, the base
model inside `with model.disable_adapter():`, or one of several loaded adapters after
`set_adapter`.
"""

from __future__ import annotations

import json
import math
from typing import Any, cast

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from workers.training.data import Example, prompt_and_answer, prompt_ids
from workers.training.loop import mean_loss


def _parses(text: str, *, container: bool = False) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return isinstance(value, dict | list) or not container


def _stop_ids(model: nn.Module, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The tokenizer's eos plus any the generation config names (some chat models end turns
    with a token other than eos)."""
    ids = {int(tokenizer.eos_token_id)} if tokenizer.eos_token_id is not None else set()
    config = getattr(model, "generation_config", None)
    extra = getattr(config, "eos_token_id", None)
    if isinstance(extra, int):
        ids.add(extra)
    elif isinstance(extra, list):
        ids.update(int(i) for i in extra)
    if not ids:
        raise ValueError("no eos token to stop generation at")
    return sorted(ids)


def generate_answers(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[int]],
    *,
    batch_size: int,
    pad_id: int,
    max_new_tokens: int,
) -> list[str]:
    """Greedy continuations of token-id prompts, cut at the first stop token, in input order.

    Batches are left-padded with `pad_id` (prompts of similar length share a batch), so every
    row's new tokens start at the same column; the tokenizer's padding settings are not used.
    """
    stops = _stop_ids(model, tokenizer)
    stop_set = set(stops)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers = [""] * len(prompts)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                width = max(len(prompts[i]) for i in chunk)
                ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, i in enumerate(chunk):
                    n = len(prompts[i])
                    ids[row, width - n :] = torch.tensor(prompts[i], dtype=torch.long)
                    mask[row, width - n :] = 1
                device = next(model.parameters()).device
                out = cast(Any, model).generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    do_sample=False,
                    max_new_tokens=max_new_tokens,
                    eos_token_id=stops,
                    pad_token_id=pad_id,
                )
                for row, i in enumerate(chunk):
                    new = out[row, width:].tolist()
                    cut = next((k for k, t in enumerate(new) if t in stop_set), len(new))
                    answers[i] = str(tokenizer.decode(new[:cut], skip_special_tokens=False))
    finally:
        model.train(was_training)
    return answers


def score(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict[str, Any]],
    examples: list[Example],
    *,
    batch_size: int,
    pad_id: int,
    max_generate: int = 64,
    max_new_tokens: int = 96,
) -> dict[str, float]:
    """Metrics on held-out data: `examples` (usually `render_rows(rows)`) for the loss, the first
    `max_generate` of `rows` for generation.

    `json_valid` is reported only when most reference answers are JSON objects or arrays.
    """
    if not rows:
        raise ValueError("no rows to generate from")
    eval_loss, n_tokens = mean_loss(model, examples, batch_size=batch_size, pad_id=pad_id)
    picked = rows[:max_generate]
    references = [prompt_and_answer(row)[1].strip() for row in picked]
    generated = generate_answers(
        model,
        tokenizer,
        [prompt_ids(row, tokenizer) for row in picked],
        batch_size=batch_size,
        pad_id=pad_id,
        max_new_tokens=max_new_tokens,
    )
    generated = [g.strip() for g in generated]
    metrics = {
        "eval_loss": eval_loss,
        "perplexity": math.exp(min(eval_loss, 700.0)),
        "n_examples": float(len(examples)),
        "n_tokens": float(n_tokens),
    }
    if not picked:  # max_generate 0: loss and perplexity only
        return metrics
    matches = sum(g == r for g, r in zip(generated, references, strict=True))
    metrics["exact_match"] = matches / len(picked)
    if 2 * sum(_parses(r, container=True) for r in references) > len(references):
        metrics["json_valid"] = sum(_parses(g) for g in generated) / len(generated)
    return metrics
