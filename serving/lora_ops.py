"""CPU LoRA ops made of plain tensor ops, so vLLM's compiler can take them into its graph.

vLLM's CPU ops gather, for every token, its adapter's whole A and B matrices (padded to
`--max-lora-rank`) and multiply one token at a time, in Python the compiler cannot trace. Here
every slot's weights stay where vLLM stacked them, (slots, 1, rank, in) and (slots, 1, out,
rank), and each token keeps only its own slot through a one-hot mask built from the token's
slot index (-1, the base model, masks everything: exactly zero delta):

    shrink:  h = sum over slots of mask[t, s] * (x @ A[s]^T)   one product against all slots
    expand:  y += sum over slots of (mask[t, s] * h) @ B[s]^T   one batched product over slots

(`linear` keeps the masked per-slot h between the two, so it needs no sum in between.)

Two products per slice, whatever the mix of adapters in the batch, no per-token copies and no
Python branch on per-step state, so the compiled graph stays valid from step to step (it reads
the index buffer and the stacked weights as inputs). The arithmetic covers every slot at the
engine's `--max-lora-rank`: slots * rank * (in + out) per token and slice, which is why the base
model's `max_lora_rank` should be the largest rank really served (the engine follows it).
"""

from __future__ import annotations

import torch
from torch import Tensor


def slot_mask(indices: Tensor, slots: int, dtype: torch.dtype) -> Tensor:
    """(T, slots): 1 where the token's slot is s; all zero for -1 (no adapter) and for any value
    outside the slots (a row the step's mapping did not cover)."""
    return (indices.unsqueeze(1) == torch.arange(slots, device=indices.device)).to(dtype)


def shrink(x: Tensor, a: Tensor, mask: Tensor) -> Tensor:
    """(T, rank): x @ A^T of each token's own slot. a: (slots, 1, rank, in)."""
    slots, rank = a.shape[0], a.shape[-2]
    h = (x @ a.reshape(slots * rank, a.shape[-1]).t()).view(-1, slots, rank)
    return (h * mask.unsqueeze(-1)).sum(dim=1)


def _expand_spread(spread: Tensor, b: Tensor) -> Tensor:
    """(T, out) from (T, slots, rank) already masked: one batched product over the slots, read
    from B where it lies (no transposed copy of B), summed over the slots."""
    slots, out, rank = b.shape[0], b.shape[-2], b.shape[-1]
    per_slot = torch.bmm(spread.transpose(0, 1), b.reshape(slots, out, rank).transpose(1, 2))
    return per_slot.sum(dim=0)


def expand(h: Tensor, b: Tensor, mask: Tensor) -> Tensor:
    """(T, out): h @ B^T of each token's own slot. b: (slots, 1, out, rank)."""
    return _expand_spread(h.unsqueeze(1) * mask.unsqueeze(-1), b)


def linear(x: Tensor, a: Tensor, b: Tensor, mask: Tensor, scale: float) -> Tensor:
    """(T, out): the LoRA delta of each token through its own slot."""
    slots, rank = a.shape[0], a.shape[-2]
    h = (x @ a.reshape(slots * rank, a.shape[-1]).t()).view(-1, slots, rank)
    spread = h * (mask * scale if scale != 1.0 else mask).unsqueeze(-1)
    return _expand_spread(spread, b)
