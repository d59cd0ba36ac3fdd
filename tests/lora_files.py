"""A toy base model folder and PEFT-layout adapters for API tests (see adapters/fakes.py).

The registry never loads weights, only headers and digests; zeros are enough for its tests.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.registry.adapters.fakes import (
    HIDDEN,
    MODULE_SHAPES,
    adapter_config,
    lora_tensors,
    safetensors_bytes,
    write_llama,
)


def make_base_model(folder: Path) -> Path:
    """Llama-shaped: hidden 64, 2 layers, 4 heads / 2 KV heads, intermediate 172."""
    return write_llama(folder)


def make_adapter(
    base_name: str,
    *,
    r: int = 4,
    targets: tuple[str, ...] = ("q_proj", "v_proj"),
    hidden: int = HIDDEN,
    peft_type: str = "LORA",
) -> tuple[bytes, bytes]:
    """(adapter_config.json, adapter_model.safetensors); `hidden` != 64 builds one for another
    model size, which the registry must refuse."""
    config = adapter_config(peft_type=peft_type, base_model_name_or_path=base_name, r=r,
                            lora_alpha=2 * r, target_modules=list(targets))
    modules = [m for m in MODULE_SHAPES if m.rsplit(".", 1)[1] in targets]
    spec = {
        name: (dtype, [hidden if dim == HIDDEN else dim for dim in shape])
        for name, (dtype, shape) in lora_tensors(modules, r=r).items()
    }
    return json.dumps(config).encode(), safetensors_bytes(spec)
