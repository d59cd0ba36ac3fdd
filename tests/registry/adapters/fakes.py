"""Safetensors files, a tiny Llama-like base model and PEFT LoRA adapters, in pure Python.

The data sections are zeros: only names, dtypes and shapes matter to the registry.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from registry.adapters.lora_check import check_lora_adapter
from registry.adapters.safetensors import parse_header
from registry.base_models.inspect import BaseModelInfo, inspect_base_model, local_source

ITEMSIZE = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I8": 1, "U8": 1, "I64": 8}

HIDDEN, LAYERS, HEADS, KV_HEADS, INTERMEDIATE, VOCAB = 64, 2, 4, 2, 172, 128
KV = KV_HEADS * (HIDDEN // HEADS)  # 32
# Linear modules of one decoder layer: suffix -> [out_features, in_features].
MODULE_SHAPES = {
    "mlp.down_proj": [HIDDEN, INTERMEDIATE],
    "mlp.gate_proj": [INTERMEDIATE, HIDDEN],
    "mlp.up_proj": [INTERMEDIATE, HIDDEN],
    "self_attn.k_proj": [KV, HIDDEN],
    "self_attn.o_proj": [HIDDEN, HIDDEN],
    "self_attn.q_proj": [HIDDEN, HIDDEN],
    "self_attn.v_proj": [KV, HIDDEN],
}

Spec = dict[str, tuple[str, Sequence[int]]]  # tensor name -> (dtype, shape)
SpecIn = Mapping[str, tuple[str, Sequence[int]]]


def raw_file(header: dict[str, Any] | bytes, data_size: int = 0) -> bytes:
    """A file with exactly this header (no checks): for malformed cases."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + bytes(data_size)


def safetensors_bytes(tensors: SpecIn, metadata: dict[str, str] | None = None) -> bytes:
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * ITEMSIZE[dtype]
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # the reference writer pads the header to 8 bytes
    return struct.pack("<Q", len(raw)) + raw + bytes(offset)


def llama_config(**overrides: Any) -> dict[str, Any]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "intermediate_size": INTERMEDIATE,
        "vocab_size": VOCAB,
        "rms_norm_eps": 1e-5,
        "torch_dtype": "float32",
    } | overrides


def llama_tensors(layers: int = LAYERS, dtype: str = "F32") -> Spec:
    spec: Spec = {"model.embed_tokens.weight": (dtype, [VOCAB, HIDDEN])}
    for i in range(layers):
        for suffix, shape in MODULE_SHAPES.items():
            spec[f"model.layers.{i}.{suffix}.weight"] = (dtype, shape)
        spec[f"model.layers.{i}.input_layernorm.weight"] = (dtype, [HIDDEN])
        spec[f"model.layers.{i}.post_attention_layernorm.weight"] = (dtype, [HIDDEN])
    spec["model.norm.weight"] = (dtype, [HIDDEN])
    spec["lm_head.weight"] = (dtype, [VOCAB, HIDDEN])
    return spec


def write_llama(
    folder: Path, *, shards: int = 1, tensors: SpecIn | None = None, **config: Any
) -> Path:
    """A model folder: config.json + model.safetensors, or N shards + index (reverse order, so
    layer 0 lands in the last shard)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(llama_config(**config)))
    spec = tensors if tensors is not None else llama_tensors()
    if shards == 1:
        (folder / "model.safetensors").write_bytes(safetensors_bytes(spec))
        return folder
    names = list(spec)[::-1]
    size = -(-len(names) // shards)
    weight_map: dict[str, str] = {}
    for k in range(shards):
        shard = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: spec[n] for n in names[k * size : (k + 1) * size]}
        (folder / shard).write_bytes(safetensors_bytes(part))
        weight_map |= dict.fromkeys(part, shard)
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def lora_tensors(
    modules: Iterable[str] = ("self_attn.q_proj", "self_attn.v_proj"),
    *,
    r: int = 8,
    layers: Iterable[int] = range(LAYERS),
    dtype: str = "F32",
    adapter_name: str | None = None,
) -> Spec:
    """Tensors as PEFT saves them for a LlamaForCausalLM base."""
    seg = f".{adapter_name}" if adapter_name else ""
    spec: Spec = {}
    for i in layers:
        for suffix in modules:
            out_f, in_f = MODULE_SHAPES[suffix]
            path = f"base_model.model.model.layers.{i}.{suffix}"
            spec[f"{path}.lora_A{seg}.weight"] = (dtype, [r, in_f])
            spec[f"{path}.lora_B{seg}.weight"] = (dtype, [out_f, r])
    return spec


def adapter_config(**overrides: Any) -> dict[str, Any]:
    """An adapter_config.json as PEFT 0.21 writes it (the fields the registry reads)."""
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": "/models/tiny-llama",
        "r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.05,
        "bias": "none",
        "target_modules": ["q_proj", "v_proj"],
        "rank_pattern": {},
        "alpha_pattern": {},
        "use_dora": False,
        "use_rslora": False,
        "modules_to_save": None,
        "fan_in_fan_out": False,
        "inference_mode": True,
    } | overrides


NAMES = {"tiny", "file:///models/tiny-llama", "tiny-llama"}  # the base model's known names


def inspected_llama(folder: Path) -> BaseModelInfo:
    return inspect_base_model(local_source(write_llama(folder)))


def check_adapter(
    base: BaseModelInfo, tensors: SpecIn | None = None, max_rank: int = 64, **config: Any
) -> list[str]:
    """The problems `check_lora_adapter` finds in an adapter (default: q/v, r=8) for `base`."""
    header = parse_header(safetensors_bytes(lora_tensors() if tensors is None else tensors))
    problems = check_lora_adapter(
        adapter_config(**config),
        header,
        base,
        base_model_names=NAMES,
        base_name="tiny",
        max_rank=max_rank,
    )
    return [p.reason for p in problems]


def one(problems: list[str], needle: str) -> None:
    assert len(problems) == 1 and needle in problems[0], problems
