"""6. Where the engine's time goes: vLLM's CPU LoRA ops, in-process."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.serving.common import PROMPTS, median


def bench_lora_ops(base: Path, max_rank: int, adapter_rank: int = 8, n: int = 20) -> dict:
    """One decode step of 16 sequences through vLLM's CPU LoRA ops (vllm.lora.ops.torch_ops,
    with our lora_patch as in the engine), called as PunicaWrapperCPU calls them: per layer,
    shrink + expand for each slice of qkv, o, gate_up and down. Weights are stacked as the
    engine stacks them: 8 slots, rank padded to --max-lora-rank. One torch thread, like the
    engine's worker. Against: the same projections' own matmuls."""
    import torch
    from vllm.lora.ops.torch_ops import lora_ops

    from serving import lora_ops as masked_ops
    from serving import lora_patch

    lora_patch.apply()
    torch.set_num_threads(1)
    cfg = json.loads((base / "config.json").read_text())
    h, inter, heads = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_attention_heads"]
    hd = cfg.get("head_dim") or h // heads
    q, kv, tokens, slots = heads * hd, cfg["num_key_value_heads"] * hd, len(PROMPTS), 8
    shapes = [(h, [q, kv, kv]), (q, [h]), (h, [inter, inter]), (inter, [h])]
    start, lens = torch.arange(tokens), torch.ones(tokens, dtype=torch.long)

    def stacked(rank: int) -> list[tuple[Any, ...]]:
        return [
            (
                [torch.randn(slots, 1, rank, i) for _ in outs],
                [torch.randn(slots, 1, o, rank) for o in outs],
                torch.randn(tokens, i),
                [torch.zeros(tokens, rank) for _ in outs],
                torch.zeros(tokens, sum(outs)),
            )
            for i, outs in shapes
        ]

    def lora_step(weights: list[tuple[Any, ...]], idx: Any) -> None:
        for _ in range(cfg["num_hidden_layers"]):
            for (_, outs), (a, b, x, ys, y) in zip(shapes, weights, strict=True):
                for s in range(len(outs)):
                    lora_ops.sgmv_shrink(x, a[s], ys[s], start, lens, idx, tokens, 1, tokens, 1.0)
                offset = 0
                for s, o in enumerate(outs):
                    lora_ops.sgmv_expand_slice(
                        ys[s], b[s], y, start, lens, idx, tokens, 1, tokens, offset, o, True
                    )
                    offset += o

    linears = [(torch.randn(tokens, i), torch.randn(sum(outs), i)) for i, outs in shapes]

    def base_step() -> None:
        for _ in range(cfg["num_hidden_layers"]):
            for x, w in linears:
                torch.nn.functional.linear(x, w)

    def timed(fn: Callable[[], None]) -> dict[str, float]:
        fn()
        xs = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            xs.append((time.perf_counter() - t0) * 1e3)
        return {"min_ms": min(xs), "median_ms": median(xs)}

    def masked_step(weights: list[tuple[Any, ...]], idx: Any) -> None:
        """Ours (serving/lora_ops.py), eager: one mask, two products per slice."""
        mask = masked_ops.slot_mask(idx, slots, torch.float32)
        for _ in range(cfg["num_hidden_layers"]):
            for (_, outs), (a, b, x, _ys, y) in zip(shapes, weights, strict=True):
                offset = 0
                for s, o in enumerate(outs):
                    y[:, offset : offset + o] += masked_ops.linear(x, a[s], b[s], mask, 1.0)
                    offset += o

    one, mixed = torch.zeros(tokens, dtype=torch.long), torch.arange(tokens) // 2
    padded, exact = stacked(max_rank), stacked(adapter_rank)
    compiled = torch.compile(masked_step, dynamic=True)
    return {
        "masked_mixed8": timed(lambda: masked_step(padded, mixed)),
        "masked_compiled_mixed8": timed(lambda: compiled(padded, mixed)),
        "max_lora_rank": max_rank,
        "adapter_rank": adapter_rank,
        "base_matmuls": timed(base_step),
        "lora_padded_one": timed(lambda: lora_step(padded, one)),
        "lora_padded_mixed8": timed(lambda: lora_step(padded, mixed)),
        "lora_exact_mixed8": timed(lambda: lora_step(exact, mixed)),
    }
