"""Catastrophic forgetting on the tiny base model, and its cure by rehearsal.

    .venv/bin/python -m bench.forgetting                      # the tests' small base model
    .venv/bin/python -m bench.forgetting --model PATH         # any saved base (e.g. the demo's)
    .venv/bin/python -m bench.forgetting --lrs 2e-4,1e-2,1.5e-2 --ratios 0,0.5,1 --seed 1

No services: in one process it trains LoRA adapters with the workers' own code (attach_lora,
train with best-held-out selection, render_rows, split_heldout) on a sample tenant's rows, at
each learning rate, without and with rehearsal rows (`workers.devmodel.general_suite`) mixed in,
and scores every adapter and the base model on the tenant's held-out rows (mean loss) and on
the general suite calibrated on the base model (share of rows whose loss check passes, mean
loss, share of `contains` checks passed by greedy generation). `ratio` is rehearsal rows per
tenant training row. It prints a markdown table and writes JSON to bench/results/forgetting.json.

What it shows (issue 16): the base passes its calibrated suite by construction; a high learning
rate wins on its own held-out loss but drops the general pass share by far more than the
tolerance; the same training with rehearsal keeps the share within the tolerance and still wins.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from workers.devmodel.general_suite import DEFAULT_SLACK, calibrate, general_suite_rows
from workers.devmodel.general_suite import rehearsal_rows as make_rehearsal
from workers.devmodel.samples import sample_rows
from workers.training.data import Example, prompt_ids, render_row, render_rows, split_heldout
from workers.training.evaluate import generate_answers
from workers.training.loop import LoopConfig, mean_loss, train
from workers.training.lora import attach_lora

RESULTS = Path(__file__).parent / "results"
MAX_SEQ_LENGTH = 512
TARGETS = ["q_proj", "v_proj"]  # the platform's default LoRA target modules


@dataclass(frozen=True)
class Setup:
    tenant: str = "orders"
    rows: int = 160  # tenant rows before the held-out split
    suite_rows: int = 96
    slack: float = DEFAULT_SLACK
    tolerance: float = 0.10
    rank: int = 8
    alpha: float = 16.0
    epochs: int = 3
    batch_size: int = 8
    seed: int = 0
    heldout_fraction: float = 0.1  # the platform's default (Settings.heldout_fraction)


class Scorer:
    """The tenant's held-out examples and the calibrated general suite, for one base model."""

    def __init__(self, model: Any, tokenizer: PreTrainedTokenizerBase, setup: Setup) -> None:
        self.tokenizer, self.setup = tokenizer, setup
        self.pad_id = int(tokenizer.pad_token_id or 0)
        tenant = sample_rows(setup.tenant, setup.rows, seed=setup.seed)  # type: ignore[arg-type]
        self.train_rows, heldout_rows = split_heldout(
            tenant, seed=setup.seed, fraction=setup.heldout_fraction
        )
        self.heldout = render_rows(heldout_rows, tokenizer, MAX_SEQ_LENGTH)
        raw = general_suite_rows(setup.suite_rows, seed=setup.seed)
        self.suite_examples = [self._suite_example(r) for r in raw]
        self.suite_prompts = [prompt_ids({"prompt": r["prompt"], "completion": ""}, tokenizer)
                              for r in raw]  # fmt: skip
        raw_contains = [i for i, r in enumerate(raw) if len(r["checks"]) > 1]
        outputs = [""] * len(raw)
        for i, text in zip(raw_contains, self.outputs(model, raw_contains), strict=True):
            outputs[i] = text
        self.suite = calibrate(raw, self.row_losses(model), slack=setup.slack, outputs=outputs)
        self.with_contains = [i for i, r in enumerate(self.suite) if len(r["checks"]) > 1]

    def _suite_example(self, row: dict[str, Any]) -> Example:
        loss = next(c for c in row["checks"] if c["type"] == "loss")
        pair = {"prompt": row["prompt"], "completion": loss["reference"]}
        example = render_row(pair, self.tokenizer, MAX_SEQ_LENGTH)
        if example is None:
            raise ValueError(f"suite row {row['id']} has no reference tokens")
        return example

    def row_losses(self, model: Any) -> list[float]:
        return [
            mean_loss(model, [e], batch_size=1, pad_id=self.pad_id)[0] for e in self.suite_examples
        ]

    def outputs(self, model: Any, rows: list[int]) -> list[str]:
        prompts = [self.suite_prompts[i] for i in rows]
        return generate_answers(
            model, self.tokenizer, prompts, batch_size=16, pad_id=self.pad_id, max_new_tokens=24
        )

    def score(self, model: Any) -> dict[str, float]:
        """Held-out loss; the suite's pass_rate (all checks of a row), loss and contains shares
        (as the design names its metrics) and mean_loss."""
        heldout, _ = mean_loss(model, self.heldout, batch_size=16, pad_id=self.pad_id)
        losses = self.row_losses(model)
        loss_ok = [
            loss <= next(c["max_loss"] for c in row["checks"] if c["type"] == "loss")
            for row, loss in zip(self.suite, losses, strict=True)
        ]
        contains_ok = dict.fromkeys(range(len(self.suite)), True)
        for i, text in zip(
            self.with_contains, self.outputs(model, self.with_contains), strict=True
        ):
            contains_ok[i] = self.suite[i]["checks"][1]["value"] in text
        passed = [ok and contains_ok[i] for i, ok in enumerate(loss_ok)]
        out = {
            "heldout_loss": heldout,
            "general_pass": sum(passed) / len(passed),
            "general_loss_pass": sum(loss_ok) / len(loss_ok),
            "general_mean_loss": sum(losses) / len(losses),
            "contains_rows": len(self.with_contains),
        }
        if self.with_contains:
            hits = [contains_ok[i] for i in self.with_contains]
            out["general_contains"] = sum(hits) / len(hits)
        return out


def run_one(path: Path, scorer: Scorer, lr: float, ratio: float) -> dict[str, Any]:
    """Train one adapter from a fresh copy of the base; its scores and the training seconds."""
    setup = scorer.setup
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model = attach_lora(
        base, rank=setup.rank, alpha=setup.alpha, dropout=0.05, target_modules=TARGETS,
        seed=setup.seed,
    )  # fmt: skip
    n_rehearsal = round(ratio * len(scorer.train_rows))
    rows = scorer.train_rows + make_rehearsal(n_rehearsal, seed=setup.seed)
    train_set = render_rows(rows, scorer.tokenizer, MAX_SEQ_LENGTH)
    cfg = LoopConfig(
        learning_rate=lr, epochs=setup.epochs, batch_size=setup.batch_size, seed=setup.seed
    )
    started = time.perf_counter()
    result = train(model, train_set, scorer.heldout, cfg, pad_id=scorer.pad_id)
    seconds = time.perf_counter() - started
    return {
        "lr": lr,
        "ratio": ratio,
        "rehearsal_rows": n_rehearsal,
        "train_rows": len(rows),
        "steps": result.steps,
        "best_step": result.best_step,
        "train_seconds": round(seconds, 1),
        **scorer.score(model),
    }


def verdict(base: dict[str, Any], run: dict[str, Any], tolerance: float) -> str:
    wins = run["heldout_loss"] < base["heldout_loss"]
    kept = run["general_pass"] >= base["general_pass"] - tolerance
    return (
        ("promote" if wins and kept else "hold")
        + ("" if wins else " (no held-out win)")
        + ("" if kept else " (forgot)")
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", type=Path, default=None, help="default: the tests' small base")
    p.add_argument("--tenant", default="orders", choices=["orders", "support"])
    p.add_argument("--lrs", default="2e-4,1.5e-2", help="comma-separated learning rates")
    p.add_argument("--ratios", default="0,0.5", help="comma-separated rehearsal ratios")
    p.add_argument("--rows", type=int, default=Setup.rows)
    p.add_argument("--suite-rows", type=int, default=Setup.suite_rows)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--rank", type=int, default=Setup.rank)
    p.add_argument("--slack", type=float, default=Setup.slack)
    p.add_argument("--tolerance", type=float, default=Setup.tolerance)
    p.add_argument("--seed", type=int, default=Setup.seed, help="tenant rows, split, suite, LoRA")
    p.add_argument("--heldout-fraction", type=float, default=Setup.heldout_fraction)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.model is None:
        from tests.workers.platform import tiny_base_model

        args.model = tiny_base_model()
    setup = Setup(
        tenant=args.tenant, rows=args.rows, suite_rows=args.suite_rows, slack=args.slack,
        tolerance=args.tolerance, rank=args.rank, alpha=2.0 * args.rank, epochs=args.epochs,
        seed=args.seed, heldout_fraction=args.heldout_fraction,
    )  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    base_model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    scorer = Scorer(base_model, tokenizer, setup)
    base = {"lr": None, "ratio": None, **scorer.score(base_model)}
    runs = [
        run_one(args.model, scorer, float(lr), float(ratio))
        for lr in args.lrs.split(",")
        for ratio in args.ratios.split(",")
    ]
    print(f"model {args.model}, tenant {setup.tenant}, {len(scorer.train_rows)} train rows, "
          f"{len(scorer.heldout)} held out, {setup.suite_rows} suite rows, slack {setup.slack}, "
          f"rank {setup.rank}, epochs {setup.epochs}, threads {args.threads}")  # fmt: skip
    print("| subject | lr | ratio | held-out loss | general pass_rate | loss checks "
          "| general mean_loss | contains | steps (best) | train s | gate |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in [("base", base), *[("adapter", r) for r in runs]]:
        gate = "" if name == "base" else verdict(base, r, setup.tolerance)
        contains = r.get("general_contains", math.nan)  # nan: the base passes no contains check
        steps = f"{r['steps']} ({r['best_step']})" if name != "base" else ""
        print(f"| {name} | {r['lr'] or ''} | {r['ratio'] if r['ratio'] is not None else ''} "
              f"| {r['heldout_loss']:.3f} | {r['general_pass']:.2f} "
              f"| {r['general_loss_pass']:.2f} | "
              f"{r['general_mean_loss']:.3f} | {contains:.2f} ({r['contains_rows']}) | {steps} "
              f"| {r.get('train_seconds', '')} | {gate} |")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    out = {
        "setup": setup.__dict__, "model": str(args.model), "threads": args.threads,
        "machine": platform.processor() or platform.machine(), "base": base, "runs": runs,
    }  # fmt: skip
    (RESULTS / "forgetting.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
