"""Attach a LoRA adapter to a base model and save it as byte-reproducible PEFT files."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"


def attach_lora(
    model: PreTrainedModel,
    *,
    rank: int,
    alpha: float,
    dropout: float,
    target_modules: list[str],
    seed: int,
) -> PeftModel:
    """Wrap `model` with a fresh LoRA adapter; its init depends only on `seed`.

    The global torch RNG is forked, so the caller's random state is left as it was.
    """
    if rank < 1:
        raise ValueError("rank must be >= 1")
    if not target_modules:
        raise ValueError("target_modules must not be empty")
    config = LoraConfig(
        r=rank,
        lora_alpha=int(alpha) if float(alpha).is_integer() else alpha,  # type: ignore[arg-type]
        lora_dropout=dropout,
        target_modules=sorted(set(target_modules)),
        bias="none",
        task_type="CAUSAL_LM",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, config)
    if not isinstance(peft_model, PeftModel):
        raise TypeError(f"get_peft_model returned {type(peft_model).__name__}, not a PeftModel")
    return peft_model


def save_adapter(model: PeftModel, folder: Path, *, base_model_name: str) -> dict[str, Path]:
    """Write the active adapter's weights and config (no README) into `folder`.

    Same weights and config -> same bytes: PEFT writes the weights with safetensors (sorted
    keys, fixed metadata); the config is rewritten with sorted keys and sorted set-valued
    fields and carries `base_model_name` instead of whatever local path the base came from.
    """
    adapter = model.active_adapter
    if not isinstance(adapter, str):
        raise ValueError("save_adapter needs exactly one active adapter")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        model.save_pretrained(
            tmp, safe_serialization=True, selected_adapters=[adapter], save_embedding_layers=False
        )
        saved = Path(tmp) if adapter == "default" else Path(tmp) / adapter
        config = json.loads((saved / CONFIG).read_text())
        config["base_model_name_or_path"] = base_model_name
        for key, value in model.peft_config[adapter].to_dict().items():
            if isinstance(value, set | frozenset):  # PEFT lists these in hash-seeded set order
                config[key] = sorted(value, key=str)
        (folder / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        shutil.move(saved / WEIGHTS, folder / WEIGHTS)
    return {WEIGHTS: folder / WEIGHTS, CONFIG: folder / CONFIG}
