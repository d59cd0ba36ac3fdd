"""1+2. Engine throughput over its HTTP API against PEFT in-process (and plain vLLM)."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

from bench.serving.common import PROMPTS, SETTLE_S, median, progress
from bench.serving.load import batch, run_batch
from bench.serving.peft_baseline import Peft
from tests.serving.stack import ServingStack

LORA_REF = "vllm_lora_vllm_ops"


def bench_throughput(
    stack: ServingStack,
    names: list[str],
    refs: dict[str, str],
    peft: Peft,
    peft_threads: list[int],
    repeats: int,
) -> dict[str, Any]:
    engine = (stack.engine_url, {"Authorization": f"Bearer {stack.engine_key}"})
    mixed_adapters = [i // 2 for i in range(len(PROMPTS))]
    configs: dict[str, Callable[[], dict[str, Any]]] = {
        "vllm_base": lambda: asyncio.run(batch(*engine, ["tiny"] * len(PROMPTS))),
        "vllm_one": lambda: asyncio.run(batch(*engine, [names[0]] * len(PROMPTS))),
        "vllm_mixed8": lambda: asyncio.run(batch(*engine, [names[a] for a in mixed_adapters])),
    }
    for key, url in refs.items():
        # The LoRA reference serves the same 8 adapters as static modules a0..a7.
        models = [f"a{a}" for a in mixed_adapters] if key == LORA_REF else ["tiny"] * len(PROMPTS)
        configs[key] = functools.partial(run_batch, url, {}, models)
    asyncio.run(batch(*engine, names, max_tokens=1))  # load time is not throughput
    prompt_ids = configs["vllm_base"]()["prompt_ids"]
    for n, threads in enumerate(peft_threads):
        suffix = "" if n == 0 else f"_{threads}t"
        configs[f"peft_switch{suffix}"] = functools.partial(
            peft.run, prompt_ids, mixed_adapters, False, threads
        )
        if n == 0:
            configs["peft_grouped"] = functools.partial(
                peft.run, prompt_ids, mixed_adapters, True, threads
            )
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in configs}
    for rep in range(repeats + 1):  # round 0 is a warm-up
        for key, fn in configs.items():
            # A vLLM worker busy-polls (sched_yield) for 1 s after its last step (busy_loop_s in
            # vllm/distributed/device_communicators/shm_broadcast.py), and every vLLM worker on
            # this machine is pinned to core 0: let the previous engine go idle first.
            time.sleep(SETTLE_S)
            r = fn()
            run = f"run {rep}" if rep else "warm-up"
            progress(f"throughput {run}: {key} {r['tok_s']:.0f} tok/s")
            if rep:
                runs[key].append(r)
    out: dict[str, Any] = {
        k: {"tok_s_runs": [r["tok_s"] for r in rs], "tok_s": median([r["tok_s"] for r in rs])}
        for k, rs in runs.items()
    }
    out["rows"] = {k: peft_threads[0] for k in runs} | {
        f"peft_switch_{t}t": t for t in peft_threads[1:]
    }
    vllm_tokens, peft_tokens = (
        runs["vllm_mixed8"][-1]["token_ids"],
        runs["peft_switch"][-1]["token_ids"],
    )
    out["identical_outputs_mixed8_vs_peft"] = sum(
        a == b for a, b in zip(vllm_tokens, peft_tokens, strict=True)
    )
    base_tokens = runs["vllm_base"][-1]["token_ids"]
    out["adapters_change_output"] = sum(
        a != b for a, b in zip(vllm_tokens, base_tokens, strict=True)
    )
    tok = {k: out[k]["tok_s"] for k in runs}
    out["ratios"] = {
        "mixed8_over_one": tok["vllm_mixed8"] / tok["vllm_one"],
        "one_over_base": tok["vllm_one"] / tok["vllm_base"],
        "mixed8_over_peft_switch": tok["vllm_mixed8"] / tok["peft_switch"],
        "mixed8_over_peft_grouped": tok["vllm_mixed8"] / tok["peft_grouped"],
    }
    for key in refs:
        if key == LORA_REF:
            out["ratios"][f"mixed8_over_{key}"] = tok["vllm_mixed8"] / tok[key]
            out["identical_outputs_mixed8_vs_vllm_ops"] = sum(
                a == b for a, b in zip(vllm_tokens, runs[key][-1]["token_ids"], strict=True)
            )
        else:
            out["ratios"][f"base_over_{key}"] = tok["vllm_base"] / tok[key]
            out["ratios"][f"mixed8_over_{key}"] = tok["vllm_mixed8"] / tok[key]
    for key in tok:
        if key.startswith("peft_switch_"):
            out["ratios"][f"mixed8_over_{key}"] = tok["vllm_mixed8"] / tok[key]
    return out
