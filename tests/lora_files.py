"""Tiny safetensors base models and PEFT-layout LoRA adapters, written in pure Python.

The registry never loads weights, only headers and digests; zeros are enough for its tests.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

ITEMSIZE = {"F32": 4, "F16": 2, "BF16": 2}


def safetensors_bytes(tensors: dict[str, list[int]], dtype: str = "F32") -> bytes:
    header: dict[str, object] = {}
    offset = 0
    for name, shape in tensors.items():
        size = ITEMSIZE[dtype]
        for dim in shape:
            size *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"\0" * offset


# A Llama-shaped toy: hidden 64, 2 layers, 4 heads / 2 KV heads of 16, intermediate 172.
HIDDEN, LAYERS, KV_OUT, INTER = 64, 2, 32, 172
LINEAR = {
    "self_attn.q_proj": [HIDDEN, HIDDEN],
    "self_attn.k_proj": [KV_OUT, HIDDEN],
    "self_attn.v_proj": [KV_OUT, HIDDEN],
    "self_attn.o_proj": [HIDDEN, HIDDEN],
    "mlp.gate_proj": [INTER, HIDDEN],
    "mlp.up_proj": [INTER, HIDDEN],
    "mlp.down_proj": [HIDDEN, INTER],
}


def make_base_model(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": INTER,
        "vocab_size": 128,
    }
    (folder / "config.json").write_text(json.dumps(config))
    tensors: dict[str, list[int]] = {"model.embed_tokens.weight": [128, HIDDEN]}
    for layer in range(LAYERS):
        for suffix, shape in LINEAR.items():
            tensors[f"model.layers.{layer}.{suffix}.weight"] = shape
    (folder / "model.safetensors").write_bytes(safetensors_bytes(tensors))
    return folder


def make_adapter(
    base_name: str,
    *,
    r: int = 4,
    targets: tuple[str, ...] = ("q_proj", "v_proj"),
    hidden: int = HIDDEN,
    peft_type: str = "LORA",
    extra_tensors: dict[str, list[int]] | None = None,
) -> tuple[bytes, bytes]:
    """(adapter_config.json, adapter_model.safetensors) for the toy base model."""
    config = {
        "peft_type": peft_type,
        "base_model_name_or_path": base_name,
        "r": r,
        "lora_alpha": 2 * r,
        "lora_dropout": 0.0,
        "target_modules": list(targets),
        "task_type": "CAUSAL_LM",
    }
    tensors: dict[str, list[int]] = {}
    for layer in range(LAYERS):
        for suffix, (out, inp) in LINEAR.items():
            if suffix.rsplit(".", 1)[1] not in targets:
                continue
            out = hidden if out == HIDDEN else out
            inp = hidden if inp == HIDDEN else inp
            path = f"base_model.model.model.layers.{layer}.{suffix}"
            tensors[f"{path}.lora_A.weight"] = [r, inp]
            tensors[f"{path}.lora_B.weight"] = [out, r]
    tensors.update(extra_tensors or {})
    return json.dumps(config).encode(), safetensors_bytes(tensors)
