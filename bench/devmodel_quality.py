"""Can a LoRA on the tiny base model copy values? Held-out exact match, base vs adapter.

    .venv/bin/python -m bench.devmodel_quality [--steps N] [--seq-length N] [--batch-size N]
        [--hidden N] [--layers N] [--intermediate N] [--share F] [--model PATH]
        [--tasks orders,agent] [--epochs orders=5,agent=5] [--lr 0.008] [--rank 8]
        [--targets q_proj,v_proj] [--threads N] [--device cpu]

Builds a base model with the given `BuildOptions` into a temporary folder (or uses `--model`),
then, per task, trains a LoRA the way a training job does (`workers.training.data` rows and
seeded held-out split, `workers.training.lora.attach_lora`, `workers.training.loop.train`; the
demo's 300 rows, batch 8, rank 8, alpha 16, dropout 0.05) and greedily generates answers for
held-out rows: the split's 30 plus 70 rows of another seed not in the training set.

* orders: `exact_match` of the answer text.
* agent: on rows whose last assistant turn is a tool call, `tool_call_exact` (calls parsed the
  way vLLM's hermes parser reads them, `workers.training.toolcalls`; the same multiset of names
  and JSON-equal arguments) and `tool_name_accuracy`; on rows ending in text, `text_exact`.

Prints a table and timings; `--json PATH` writes them too. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from workers.devmodel.build import BuildOptions, build_base_model
from workers.devmodel.samples import sample_rows
from workers.training import data
from workers.training.evaluate import generate_answers
from workers.training.loop import LoopConfig, train
from workers.training.lora import attach_lora
from workers.training.toolcalls import ToolCall, calls_equal, names_match, parse

MAX_SEQ = 512


def reference_calls(message: dict[str, Any]) -> tuple[ToolCall, ...]:
    return tuple(
        ToolCall(c["function"]["name"], c["function"]["arguments"])
        for c in message.get("tool_calls") or ()
    )


def eval_rows(
    kind: str, train_rows: list[dict[str, Any]], heldout: list[dict[str, Any]], n: int
) -> list[dict[str, Any]]:
    """The held-out split, topped up to `n` with rows of another seed that are not trained on."""
    seen = {json.dumps(r, sort_keys=True) for r in train_rows + heldout}
    more = sample_rows(kind, n + 50, seed=7)  # type: ignore[arg-type]
    extra = [r for r in more if json.dumps(r, sort_keys=True) not in seen]
    return (heldout + extra)[:n]


def scores(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict[str, Any]],
    *,
    batch_size: int,
) -> dict[str, float]:
    prompts = [data.prompt_ids(r, tokenizer) for r in rows]
    pad = tokenizer.pad_token_id or 0
    out = generate_answers(
        model, tokenizer, prompts, batch_size=batch_size, pad_id=pad, max_new_tokens=96
    )
    exact = calls = names = text_rows = text_exact = 0
    for row, generated in zip(rows, out, strict=True):
        last = row["messages"][-1]
        ref = reference_calls(last)
        if ref:
            got = parse(generated).calls
            calls += 1
            exact += calls_equal(got, ref)
            names += names_match(got, ref)
        else:
            text_rows += 1
            text_exact += generated.strip() == (last.get("content") or "").strip()
    result: dict[str, float] = {}
    if calls:
        result["tool_call_exact"] = exact / calls
        result["tool_name_accuracy"] = names / calls
    if text_rows:
        result["text_exact" if calls else "exact_match"] = text_exact / text_rows
    return result


def run_task(
    base: Path, kind: str, epochs: int, args: argparse.Namespace, device: str
) -> dict[str, Any]:
    rows = sample_rows(kind, 300, seed=1)  # type: ignore[arg-type]
    train_rows, heldout = data.split_heldout(rows, seed=0)
    evaluation = eval_rows(kind, train_rows, heldout, args.eval_rows)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model: Any = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model.to(device)
    gen_batch = 64 if device != "cpu" else 16
    t0 = time.perf_counter()
    base_scores = scores(model, tokenizer, evaluation, batch_size=gen_batch)
    base_seconds = time.perf_counter() - t0
    print(f"{kind}: base {base_scores} ({base_seconds:.0f} s)", flush=True)
    train_set = data.render_rows(train_rows, tokenizer, MAX_SEQ)
    eval_set = data.render_rows(heldout, tokenizer, MAX_SEQ)
    peft = attach_lora(
        model,
        rank=args.rank,
        alpha=2.0 * args.rank,
        dropout=0.05,
        target_modules=args.targets.split(","),
        seed=0,
    )
    cfg = LoopConfig(learning_rate=args.lr, epochs=epochs, batch_size=8, seed=0)
    result = train(peft, train_set, eval_set, cfg, pad_id=tokenizer.pad_token_id or 0)
    adapter_scores = scores(peft, tokenizer, evaluation, batch_size=gen_batch)
    return {
        "task": kind,
        "base": base_scores,
        "adapter": adapter_scores,
        "train_seconds": round(result.seconds, 1),
        "steps": result.steps,
        "best_step": result.best_step,
        "best_eval_loss": result.best_eval_loss,
        "train_tokens": result.train_tokens,
        "base_eval_seconds": round(base_seconds, 1),
        "eval_rows": len(evaluation),
    }


def _epochs(text: str) -> dict[str, int]:
    pairs = (item.split("=") for item in text.split(",") if item)
    return {k: int(v) for k, v in pairs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = BuildOptions()
    p.add_argument("--steps", type=int, default=defaults.pretrain_steps)
    p.add_argument("--seq-length", type=int, default=defaults.seq_length)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--hidden", type=int, default=defaults.hidden_size)
    p.add_argument("--layers", type=int, default=defaults.layers)
    p.add_argument("--intermediate", type=int, default=defaults.intermediate_size)
    p.add_argument("--build-lr", type=float, default=defaults.learning_rate)
    p.add_argument("--share", type=float, default=defaults.synthetic_share)
    p.add_argument("--model", type=Path, help="use this base model instead of building one")
    p.add_argument("--tasks", default="orders,agent")
    p.add_argument("--epochs", default="orders=5,agent=5")
    p.add_argument("--lr", type=float, default=0.008)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--targets", default="q_proj,v_proj")
    p.add_argument("--eval-rows", type=int, default=100)
    p.add_argument("--threads", type=int)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    with contextlib.ExitStack() as stack:
        base = args.model
        if base is None:
            options = BuildOptions(
                pretrain_steps=args.steps,
                seq_length=args.seq_length,
                batch_size=args.batch_size,
                hidden_size=args.hidden,
                layers=args.layers,
                intermediate_size=args.intermediate,
                learning_rate=args.build_lr,
                synthetic_share=args.share,
                max_position_embeddings=max(1024, args.seq_length),
            )
            base = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "base"
            built = build_base_model(base, options, device=args.device)
            report["build"] = {k: built[k] for k in ("seconds", "final_loss", "parameters")}
            print(f"build: {report['build']}", flush=True)
        epochs = _epochs(args.epochs)
        report["tasks"] = []
        for kind in args.tasks.split(","):
            outcome = run_task(base, kind, epochs.get(kind, 5), args, args.device)
            report["tasks"].append(outcome)
            print(json.dumps(outcome), flush=True)
    print("| task | metric | base | adapter | train s | steps |")
    print("|---|---|---|---|---|---|")
    for t in report["tasks"]:
        for metric in t["adapter"]:
            print(
                f"| {t['task']} | {metric} | {t['base'].get(metric, 0):.2f} | "
                f"{t['adapter'][metric]:.2f} | {t['train_seconds']} | {t['steps']} |"
            )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
