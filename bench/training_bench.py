"""Training throughput: our LoRA loop (workers.training.loop.train) vs transformers.Trainer + PEFT.

    .venv/bin/python -m bench.training_bench [--rows 400] [--epochs 1] [--batch-size 8]
        [--repeats 2] [--threads N] [--model PATH]

One process, the same base weights, LoRA init, data, batch size, lr schedule, epochs,
max_seq_length and seed on both sides; no evaluation during training on either. Runs alternate
(ours, Trainer, Trainer, ours, ...) after an untimed warm-up of each. Throughput on both sides is
the non-pad tokens of the epochs trained divided by the wall seconds of the training call.
Prints a markdown table and writes JSON to bench/results/training.json.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import math
import os
import platform
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
)

from tests.workers.training.toy import build_model, build_tokenizer, chat_text
from workers.training.data import Example, render_rows, split_heldout
from workers.training.loop import LoopConfig, _batch_order, mean_loss, train
from workers.training.lora import attach_lora

RESULTS = Path(__file__).parent / "results"
_WORDS = (
    "the of and to in is that for it as with was on be by at this are from or have an not "
    "they which you one had but what all were when we there can more if will would about "
    "model adapter tenant dataset training loss token batch eval rank weights serve request "
    "latency memory invoice order customer refund policy account shipping address payment "
    "error retry timeout queue worker deploy version rollback metric alert dashboard query "
    "table index column schema migration backup region cluster node pod secret config "
    "please thanks sorry help question answer explain summary detail example step first "
    "then next finally because however also often usually never always quickly carefully"
)
WORDS = _WORDS.split()
SYSTEMS = [
    "You are a helpful support assistant for an online store.",
    "You answer questions about infrastructure operations concisely.",
    "Reply in a friendly tone and keep answers short.",
]


def _sentence(rng: random.Random, n_words: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n_words)]
    out, start = [], 0
    while start < len(words):
        end = start + rng.randint(6, 18)
        chunk = words[start:end]
        out.append(chunk[0].capitalize() + " " + " ".join(chunk[1:]) + rng.choice(".?!."))
        start = end
    return " ".join(out).replace(" .", ".")


def chat_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """Support-style chats, 1-3 turns, message lengths log-normal (median ~25 words)."""
    rng = random.Random(seed)

    def length() -> int:
        return max(3, min(250, round(rng.lognormvariate(math.log(25), 0.8))))

    rows = []
    for _ in range(n):
        messages = (
            [{"role": "system", "content": rng.choice(SYSTEMS)}] if rng.random() < 0.6 else []
        )
        for _ in range(rng.choice((1, 1, 2, 3))):
            messages.append({"role": "user", "content": _sentence(rng, length())})
            messages.append({"role": "assistant", "content": _sentence(rng, length())})
        rows.append({"messages": messages})
    return rows


def _load(args: argparse.Namespace, rows: list[dict[str, Any]]) -> tuple[PreTrainedModel, Any]:
    if args.model:
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        loaded: PreTrainedModel = AutoModelForCausalLM.from_pretrained(
            args.model, dtype=torch.float32
        )
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return loaded, tokenizer
    tokenizer = build_tokenizer(chat_text(rows), vocab_size=4096)
    model: PreTrainedModel = build_model(
        seed=0, vocab_size=4096, hidden=256, layers=4, heads=4, kv_heads=2, intermediate=688
    )
    return model, tokenizer


def _pad_fraction(batches: list[list[int]], lengths: list[int]) -> float:
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1.0 - sum(lengths) / padded


def run_ours(
    base: PreTrainedModel,
    examples: list[Example],
    args: argparse.Namespace,
    pad_id: int,
    max_steps: int | None = None,
) -> tuple[float, Any]:
    model = attach_lora(copy.deepcopy(base), **_lora(args))
    cfg = LoopConfig(
        learning_rate=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        warmup_ratio=0.05,
        max_steps=max_steps,
    )
    t0 = time.perf_counter()
    train(model, examples, [], cfg, pad_id=pad_id)
    return time.perf_counter() - t0, model


def run_trainer(
    base: PreTrainedModel,
    examples: list[Example],
    args: argparse.Namespace,
    tokenizer: PreTrainedTokenizerBase,
    max_steps: int | None = None,
) -> tuple[float, Any]:
    model = attach_lora(copy.deepcopy(base), **_lora(args))
    features = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    with tempfile.TemporaryDirectory(prefix="loraplex-trainer-") as tmp:
        targs = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=args.batch_size,
            num_train_epochs=args.epochs,
            max_steps=max_steps or -1,
            learning_rate=args.lr,
            lr_scheduler_type="linear",
            warmup_steps=0.05,
            weight_decay=0.0,
            max_grad_norm=1.0,
            seed=args.seed,
            data_seed=args.seed,
            report_to=[],
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="no",
            use_cpu=True,
            disable_tqdm=True,
            dataloader_num_workers=0,
            remove_unused_columns=False,
        )
        trainer = Trainer(model=model, args=targs, train_dataset=features, data_collator=collator)
        t0 = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - t0
    return seconds, model


def _lora(args: argparse.Namespace) -> dict[str, Any]:
    targets = args.targets.split(",")
    return {
        "rank": args.rank,
        "alpha": 2.0 * args.rank,
        "dropout": 0.05,
        "target_modules": targets,
        "seed": args.seed,
    }


def bench(args: argparse.Namespace) -> dict[str, Any]:
    rows = chat_rows(args.rows + args.heldout, seed=args.seed)
    base, tokenizer = _load(args, rows)
    pad_id = int(tokenizer.pad_token_id)
    train_rows, held_rows = split_heldout(
        rows, seed=args.seed, max_heldout=args.heldout, fraction=args.heldout / len(rows)
    )
    examples = render_rows(train_rows, tokenizer, args.max_seq_length)
    heldout = render_rows(held_rows, tokenizer, args.max_seq_length)
    lengths = [len(e.input_ids) for e in examples]
    tokens = sum(lengths) * args.epochs
    gen = torch.Generator().manual_seed(args.seed)
    random_batches = [
        p[i : i + args.batch_size]
        for p in [torch.randperm(len(lengths), generator=gen).tolist()]
        for i in range(0, len(p), args.batch_size)
    ]
    ours_batches = _batch_order(lengths, args.batch_size, torch.Generator().manual_seed(args.seed))

    run_ours(base, examples, args, pad_id, max_steps=3)  # warm-up, untimed
    run_trainer(base, examples, args, tokenizer, max_steps=3)
    runs: dict[str, list[dict[str, float]]] = {"ours": [], "trainer": []}
    order = [
        ("ours", "trainer") if r % 2 == 0 else ("trainer", "ours") for r in range(args.repeats)
    ]
    for name in [n for pair in order for n in pair]:
        load = os.getloadavg()[0]
        if name == "ours":
            seconds, model = run_ours(base, examples, args, pad_id)
        else:
            seconds, model = run_trainer(base, examples, args, tokenizer)
        loss, _ = mean_loss(model, heldout, batch_size=args.batch_size, pad_id=pad_id)
        runs[name].append(
            {
                "seconds": seconds,
                "tokens_per_second": tokens / seconds,
                "heldout_loss": loss,
                "loadavg_1m": load,
            }
        )
        print(
            f"  {name:8s} {seconds:7.2f} s  {tokens / seconds:9.0f} tok/s  held-out loss {loss:.4f}"
        )
    med = {k: statistics.median(r["tokens_per_second"] for r in v) for k, v in runs.items()}
    return {
        "data": {
            "train_rows": len(examples),
            "heldout_rows": len(heldout),
            "epochs": args.epochs,
            "tokens_per_epoch": sum(lengths),
            "target_tokens_per_epoch": sum(e.n_target for e in examples),
            "min_len": min(lengths),
            "max_len": max(lengths),
            "median_len": statistics.median(lengths),
            "pad_fraction_ours": _pad_fraction(ours_batches, lengths),
            "pad_fraction_random_batches": _pad_fraction(random_batches, lengths),
        },
        "runs": runs,
        "median_tokens_per_second": med,
        "ratio_ours_to_trainer": med["ours"] / med["trainer"],
    }


def render(res: dict[str, Any]) -> str:
    d, p = res["data"], res["params"]
    lines = [
        f"### LoRA training, {d['train_rows']} chat rows x {d['epochs']} epoch(s), "
        f"batch {p['batch_size']}, r={p['rank']} on {p['targets']}, {res['threads']} thread(s)",
        "",
        f"Tokens/epoch {d['tokens_per_epoch']} (targets {d['target_tokens_per_epoch']}), "
        f"lengths {d['min_len']}..{d['max_len']} (median {d['median_len']}); padding share "
        f"{d['pad_fraction_ours']:.1%} ours vs {d['pad_fraction_random_batches']:.1%} in random "
        "batches.",
        "",
        "| loop | non-pad tokens/s (median) | runs (s) | held-out loss after |",
        "| --- | ---: | --- | --- |",
    ]
    for name, label in (("ours", "workers.training.loop.train"), ("trainer", "Trainer + PEFT")):
        rs = res["runs"][name]
        secs = ", ".join(f"{r['seconds']:.2f}" for r in rs)
        losses = ", ".join(f"{r['heldout_loss']:.3f}" for r in rs)
        lines.append(
            f"| {label} | {res['median_tokens_per_second'][name]:.0f} | {secs} | {losses} |"
        )
    lines += ["", f"**ours / Trainer = {res['ratio_ours_to_trainer']:.2f}** (target >= 1.0)"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=400, help="training rows")
    ap.add_argument("--heldout", type=int, default=40, help="rows for a sanity held-out loss")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
    ap.add_argument("--max-seq-length", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=2, help="timed runs of each")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--model", help="a saved HF causal LM folder (default: random tiny Llama)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        or "unknown",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "threads": torch.get_num_threads(),
        "params": vars(args),
    }
    res.update(bench(args))
    print(render(res))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "training.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
