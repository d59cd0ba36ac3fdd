"""Score a model on held-out rows: loss, perplexity, exact match of greedy answers, JSON validity,
and tool calling (names, valid arguments, exact calls, answering in text when that is right).

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

from registry.adapters.promotion import TOOL_METRICS
from registry.datasets.tool_schemas import ToolSchemas
from registry.settings import Settings
from workers.training import toolcalls
from workers.training.data import Example, prompt_and_answer, prompt_ids, row_tools
from workers.training.loop import mean_loss
from workers.training.toolcalls import Answer

# LORAPLEX_DATASET_SCHEMA_STEPS' default: the upload's per-row budget for schema checks
SCHEMA_STEPS: int = Settings.model_fields["dataset_schema_steps"].default


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


def row_kinds(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many rows each generation metric averages over: `text_rows` (the reference is text:
    exact_match, json_valid), `tool_call_rows` (the reference calls tools: tool_name_accuracy,
    tool_args_valid, tool_call_exact) and `no_call_rows` (text while tools are offered:
    no_call_accuracy)."""
    kinds = {"text_rows": 0, "tool_call_rows": 0, "no_call_rows": 0}
    for row in rows:
        calls = prompt_and_answer(row)[1].calls
        kinds["tool_call_rows" if calls else "text_rows"] += 1
        kinds["no_call_rows"] += int(not calls and bool(row_tools(row)))
    return kinds


def answer_metrics(
    rows: list[dict[str, Any]], generated: list[str], *, schema_steps: int = SCHEMA_STEPS
) -> dict[str, float]:
    """Generation metrics of `generated` (raw text, one per row) against each row's reference.

    `exact_match` (stripped text equal) and `json_valid` are over rows whose reference is text,
    so a plain dataset scores as before; `json_valid` only when most of those references are
    JSON objects or arrays. The tool metrics are over the rows of their kind (see `row_kinds`),
    with calls read as vLLM's hermes parser reads them and arguments checked against the
    tools' schemas within `schema_steps` per row. A metric with no rows is left out.
    """
    schemas = ToolSchemas(max_steps=schema_steps)
    text: list[tuple[str, str]] = []
    tool: dict[str, list[bool]] = {name: [] for name in TOOL_METRICS}
    for row, raw in zip(rows, generated, strict=True):
        reference: Answer = prompt_and_answer(row)[1]
        tools = row_tools(row)
        got = toolcalls.parse(raw)
        if not reference.calls:
            text.append((raw.strip(), reference.text.strip()))
            if tools:
                tool["no_call_accuracy"].append(not got.calls)
            continue
        tool["tool_name_accuracy"].append(toolcalls.names_match(got.calls, reference.calls))
        tool["tool_args_valid"].append(toolcalls.args_valid(got.calls, tools, schemas))
        tool["tool_call_exact"].append(toolcalls.calls_equal(got.calls, reference.calls))
    metrics: dict[str, float] = {}
    if text:
        metrics["exact_match"] = sum(g == r for g, r in text) / len(text)
        if 2 * sum(_parses(r, container=True) for _, r in text) > len(text):
            metrics["json_valid"] = sum(_parses(g) for g, _ in text) / len(text)
    for name, hits in tool.items():
        if hits:
            metrics[name] = sum(hits) / len(hits)
    return metrics


def score(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict[str, Any]],
    examples: list[Example],
    *,
    batch_size: int,
    pad_id: int,
    max_generate: int = 64,
    max_new_tokens: int = 128,
    schema_steps: int = SCHEMA_STEPS,
) -> dict[str, float]:
    """Metrics on held-out data: `examples` (usually `render_rows(rows)`) for the loss, the first
    `max_generate` of `rows` for generation (`answer_metrics`)."""
    if not rows:
        raise ValueError("no rows to generate from")
    eval_loss, n_tokens = mean_loss(model, examples, batch_size=batch_size, pad_id=pad_id)
    picked = rows[:max_generate]
    metrics = {
        "eval_loss": eval_loss,
        "perplexity": math.exp(min(eval_loss, 700.0)),
        "n_examples": float(len(examples)),
        "n_tokens": float(n_tokens),
    }
    if not picked:  # max_generate 0: loss and perplexity only
        return metrics
    generated = generate_answers(
        model,
        tokenizer,
        [prompt_ids(row, tokenizer) for row in picked],
        batch_size=batch_size,
        pad_id=pad_id,
        max_new_tokens=max_new_tokens,
    )
    return {**metrics, **answer_metrics(picked, generated, schema_steps=schema_steps)}
