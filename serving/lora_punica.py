"""The engine's CPU LoRA path: traceable ops (`serving/lora_ops.py`) with vLLM's compiler kept on.

vLLM 0.32's CPU platform turns compilation off whenever LoRA is enabled, because its CPU punica
wrapper branches in Python on per-step state (`no_lora`, `is_prefill`, the live index lengths),
which a graph traced once would freeze. This wrapper has no such branch: every op reads the
wrapper's fixed index buffers sliced by the tensor's own length (a symbolic size under the
compiler) and is made of plain tensor ops the compiler takes into the model's graph. So the
plugin (`serving/plugin.py`) leaves the CPU platform's compilation on with LoRA enabled.

`LORAPLEX_ENGINE_LORA_OPS=vllm` turns all of it off (vLLM's own CPU ops, eager), for comparison.
"""

from __future__ import annotations

import os
from typing import Any

from torch import Tensor
from vllm.lora.punica_wrapper.punica_cpu import PunicaWrapperCPU

from serving import lora_ops

ENV = "LORAPLEX_ENGINE_LORA_OPS"
WRAPPER = "serving.lora_punica.PunicaWrapperMasked"


def enabled() -> bool:
    return os.environ.get(ENV, "masked").strip().lower() != "vllm"


def _write(y: Tensor, start: int, delta: Tensor, add: bool) -> None:
    """y[:, start : start + width] += delta (or = delta), clipped to y's width (LM-head and
    embedding outputs may be padded on either side)."""
    n = min(delta.shape[1], y.shape[1] - start)
    if add:
        y[:, start : start + n] += delta[:, :n]
    else:
        y[:, start : start + n] = delta[:, :n]


def _listed(stacked: Tensor | tuple[Tensor, ...] | list[Tensor]) -> list[Tensor]:
    return [stacked] if isinstance(stacked, Tensor) else list(stacked)


_NONZERO: dict[int, tuple[int, bool]] = {}


def _carries_weights(stacked: Tensor) -> bool:
    """Whether any slot of a stacked LoRA weight is non-zero, re-read only after vLLM wrote to
    it (its version counter moved). For the logits LoRA, which runs outside the compiled graph:
    the LM head's B is vocabulary-sized, and adapters rarely train it."""
    key = stacked.data_ptr()
    seen = _NONZERO.get(key)
    if seen is None or seen[0] != stacked._version:
        seen = (stacked._version, bool(stacked.any()))
        _NONZERO[key] = seen
    return seen[1]


class PunicaWrapperMasked(PunicaWrapperCPU):
    """vLLM's CPU wrapper (its metadata, and the paths loraplex does not serve: MoE,
    classifiers) with linear, embedding and logits LoRA through `serving.lora_ops`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # vLLM allocates these with torch.empty; rows past the step's mapping must mean "none".
        for buffer in (self._token_lora_indices, self._sampler_indices):
            buffer.fill_(-1)

    def _mask(self, n: Any, slots: int, dtype: Any, sampler: bool = False) -> Tensor:
        indices = self._sampler_indices if sampler else self._token_lora_indices
        return lora_ops.slot_mask(indices[:n], slots, dtype)

    def add_shrink(  # type: ignore[override]
        self, y: Tensor, x: Tensor, lora_a_stacked: tuple[Tensor, ...], scale: float, **kw: Any
    ) -> None:
        x = x.view(-1, x.shape[-1])
        a_list = _listed(lora_a_stacked)
        mask = self._mask(x.size(0), a_list[0].shape[0], x.dtype)
        for s, a in enumerate(a_list):
            h = lora_ops.shrink(x, a, mask)
            y[s, :, : h.shape[1]] = h * scale if scale != 1.0 else h

    def add_expand(  # type: ignore[override]
        self,
        y: Tensor,
        x: Tensor,
        lora_b_stacked: tuple[Tensor, ...],
        output_slices: tuple[int, ...],
        offset_start: int = 0,
        add_inputs: bool = True,
        **kw: Any,
    ) -> None:
        y2 = y.view(-1, y.shape[-1])
        b_list = _listed(lora_b_stacked)
        mask = self._mask(x.size(1), b_list[0].shape[0], y.dtype)
        offset = offset_start
        for s, (b, size) in enumerate(zip(b_list, output_slices, strict=True)):
            _write(y2, offset, lora_ops.expand(x[s].to(y.dtype), b, mask), add_inputs)
            offset += size

    def add_lora_embedding(  # type: ignore[override]
        self, y: Tensor, x: Tensor, lora_b_stacked: Tensor, add_inputs: bool = True, **kw: Any
    ) -> None:
        mask = self._mask(x.size(0), lora_b_stacked.shape[0], y.dtype)
        _write(y, 0, lora_ops.expand(x.to(y.dtype), lora_b_stacked, mask), add_inputs)

    def add_lora_linear(  # type: ignore[override]
        self,
        y: Tensor,
        x: Tensor,
        lora_a_stacked: tuple[Tensor, ...],
        lora_b_stacked: tuple[Tensor, ...],
        scale: float,
        output_slices: tuple[int, ...],
        *,
        buffer: Tensor | None = None,
        **kw: Any,
    ) -> None:
        y2 = y.view(-1, y.shape[-1])
        x = x.view(-1, x.shape[-1])
        a_list, b_list = _listed(lora_a_stacked), _listed(lora_b_stacked)
        mask = self._mask(x.size(0), a_list[0].shape[0], x.dtype)
        add = kw.get("add_inputs", True)
        offset = 0
        for a, b, size in zip(a_list, b_list, output_slices, strict=True):
            _write(y2, offset, lora_ops.linear(x, a, b, mask, scale), add)
            offset += size

    def add_lora_logits(  # type: ignore[override]
        self,
        y: Tensor,
        x: Tensor,
        lora_a_stacked: Tensor,
        lora_b_stacked: Tensor,
        scale: float,
        *,
        buffer: Tensor | None = None,
        **kw: Any,
    ) -> None:
        if not _carries_weights(lora_b_stacked):
            return  # no loaded adapter touches the LM head (the usual case): nothing to add
        y2 = y.view(-1, y.shape[-1])
        x = x.view(-1, x.shape[-1])
        mask = self._mask(x.size(0), lora_a_stacked.shape[0], x.dtype, sampler=True)
        _write(y2, 0, lora_ops.linear(x, lora_a_stacked, lora_b_stacked, mask, scale), True)


def apply() -> bool:
    """Point the CPU platform at this wrapper and keep its compilation with LoRA on.

    Returns False when vLLM is absent, the platform is not the CPU one, the ops are turned off,
    or it was applied already."""
    if not enabled():
        return False
    try:
        from vllm.platforms.cpu import CpuPlatform
    except ImportError:
        return False
    if getattr(CpuPlatform, "__loraplex_lora_ops__", False):
        return False
    original = CpuPlatform.check_and_update_config.__func__  # type: ignore[attr-defined]

    def check_and_update_config(cls: type, vllm_config: Any) -> None:
        # The CPU platform's only use of lora_config there is to set compilation to NONE.
        lora_config = vllm_config.lora_config
        vllm_config.lora_config = None
        try:
            original(cls, vllm_config)
        finally:
            vllm_config.lora_config = lora_config

    CpuPlatform.check_and_update_config = classmethod(check_and_update_config)  # type: ignore[assignment,method-assign]
    CpuPlatform.get_punica_wrapper = classmethod(lambda cls: WRAPPER)  # type: ignore[assignment,method-assign]
    CpuPlatform.__loraplex_lora_ops__ = True  # type: ignore[attr-defined]
    return True
