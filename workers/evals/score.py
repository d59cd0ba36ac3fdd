"""Score one model state on one eval suite: greedy answers checked row by row, reference losses.

Whatever adapter state the caller set up is what gets scored (the active LoRA adapter, the
base model inside `with model.disable_adapter():`, ...), as in `workers.training.evaluate`.

A suite row is turned into a training row whose last assistant turn (or completion) is a
placeholder or the loss check's reference, and is tokenized by `workers.training.data`, so the
prompt a row generates from is exactly what training and serving put before an answer, and a
reference's loss is over exactly the tokens training would learn (the final assistant turn with
its end token; for a raw-text row the completion and eos). Earlier assistant turns of a chat
row are context only (weight 0).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn
from transformers import PreTrainedTokenizerBase

from workers.evals.checks import CHECK_KINDS, GENERATION_KINDS, CheckCache, passes
from workers.evals.losses import row_losses
from workers.training.data import Example, prompt_ids, render_row
from workers.training.evaluate import generate_answers

OUTPUT_CHARS = 300  # of each generated answer kept in the details
PLACEHOLDER = "x"  # the answer turn when a row has no reference: it does not change the prompt


@dataclass(frozen=True)
class SuiteScore:
    """`metrics`: pass_rate, one share per check kind present, mean_loss (with loss checks) and
    rows; `details`: {"rows": [{"i", "id", "passed", "checks": {kind: bool}, "loss", "output"}]}
    in suite order (`output` is None for a row with only a loss check: nothing is generated)."""

    metrics: dict[str, float]
    details: dict[str, Any]


@dataclass
class _Plan:
    i: int
    row: dict[str, Any]
    checks: list[dict[str, Any]]
    prompt: list[int] | None = None  # None: no check reads generated text
    example: Example | None = None  # the loss check's reference, rendered
    loss: float | None = None
    output: str | None = None
    results: dict[str, bool] = field(default_factory=dict)


def training_row(row: dict[str, Any], answer: str) -> dict[str, Any]:
    """The suite row as a training row whose final, only trained, answer is `answer`."""
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list):
            raise ValueError("'messages' must be a list")
        context = [
            {**m, "weight": 0} if isinstance(m, dict) and m.get("role") == "assistant" else m
            for m in messages
        ]
        out: dict[str, Any] = {"messages": [*context, {"role": "assistant", "content": answer}]}
        if row.get("tools"):
            out["tools"] = row["tools"]
        return out
    if not isinstance(row.get("prompt"), str):
        raise ValueError("a suite row needs either 'messages' or a string 'prompt'")
    return {"prompt": row["prompt"], "completion": answer}


def _plan(i: int, row: Any, tokenizer: PreTrainedTokenizerBase, max_len: int) -> _Plan:
    if not isinstance(row, dict):
        raise ValueError(f"suite row {i}: not a JSON object")
    checks = row.get("checks")
    if not isinstance(checks, list) or not checks or not all(isinstance(c, dict) for c in checks):
        raise ValueError(f"suite row {i}: 'checks' must be a non-empty list of objects")
    kinds = [c.get("type") for c in checks]
    unknown = [k for k in kinds if k not in CHECK_KINDS]
    if unknown:
        raise ValueError(f"suite row {i}: unknown check type {unknown[0]!r}")
    losses = [c for c in checks if c["type"] == "loss"]
    if len(losses) > 1:
        raise ValueError(f"suite row {i}: at most one loss check per row")
    plan = _Plan(i, row, checks)
    try:
        if losses:
            reference = losses[0].get("reference")
            if not isinstance(reference, str):
                raise ValueError("the loss check's 'reference' must be a string")
            train_row = training_row(row, reference)
            plan.example = render_row(train_row, tokenizer, max_len)
        else:
            train_row = training_row(row, PLACEHOLDER)
        if any(k in GENERATION_KINDS for k in kinds):
            plan.prompt = prompt_ids(train_row, tokenizer)
    except ValueError as e:
        raise ValueError(f"suite row {i}: {e}") from e
    return plan


def _length(plan: _Plan) -> int:
    return max(len(plan.prompt or ()), len(plan.example.input_ids) if plan.example else 0)


def score_suite(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict[str, Any]],
    *,
    batch_size: int,
    pad_id: int,
    max_new_tokens: int,
    schema_steps: int,
    max_seq_length: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> SuiteScore:
    """Score `rows` (parsed suite lines) with greedy generation of up to `max_new_tokens`.

    Rows are processed in batches of similar length; `on_progress(done, total)` runs after each
    (in rows). `max_seq_length` cuts a loss reference's rendering as training does (None: no
    cut); a reference with no token left has no loss and fails its check. A row that cannot be
    rendered with this tokenizer's chat template raises ValueError naming the row.
    """
    if not rows:
        raise ValueError("no rows to score")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    max_len = sys.maxsize if max_seq_length is None else max_seq_length
    plans = [_plan(i, row, tokenizer, max_len) for i, row in enumerate(rows)]
    cache = CheckCache(schema_steps=schema_steps)
    order = sorted(plans, key=_length)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        scored = [(p, p.example) for p in chunk if p.example is not None]
        if scored:
            examples = [example for _, example in scored]
            values = row_losses(model, examples, batch_size=batch_size, pad_id=pad_id)
            for (p, _), value in zip(scored, values, strict=True):
                p.loss = value if math.isfinite(value) else None
        prompted = [(p, p.prompt) for p in chunk if p.prompt is not None]
        if prompted:
            answers = generate_answers(
                model,
                tokenizer,
                [prompt for _, prompt in prompted],
                batch_size=batch_size,
                pad_id=pad_id,
                max_new_tokens=max_new_tokens,
            )
            for (p, _), answer in zip(prompted, answers, strict=True):
                p.output = answer
        for p in chunk:
            for check in p.checks:
                ok = passes(check, p.output or "", p.loss, cache)
                p.results[check["type"]] = p.results.get(check["type"], True) and ok
        if on_progress is not None:
            on_progress(start + len(chunk), len(plans))
    return SuiteScore(_metrics(plans), {"rows": [_detail(p) for p in plans]})


def _metrics(plans: list[_Plan]) -> dict[str, float]:
    metrics = {"pass_rate": sum(all(p.results.values()) for p in plans) / len(plans)}
    for kind in CHECK_KINDS:
        having = [p.results[kind] for p in plans if kind in p.results]
        if having:
            metrics[kind] = sum(having) / len(having)
    if "loss" in metrics:
        losses = [p.loss for p in plans if "loss" in p.results and p.loss is not None]
        if losses:
            metrics["mean_loss"] = sum(losses) / len(losses)
    metrics["rows"] = float(len(plans))
    return metrics


def _detail(plan: _Plan) -> dict[str, Any]:
    row_id = plan.row.get("id")
    return {
        "i": plan.i,
        "id": row_id if isinstance(row_id, str) else None,
        "passed": all(plan.results.values()),
        "checks": {k: plan.results[k] for k in CHECK_KINDS if k in plan.results},
        "loss": plan.loss,
        "output": plan.output[:OUTPUT_CHARS] if plan.output is not None else None,
    }
