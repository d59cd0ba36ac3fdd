"""Turning a trained adapter folder into a registered artifact: checked against the base model
with the registry's own upload checks, files first, `manifest.json` last."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from registry.adapters.lora_check import check_lora_adapter, parse_adapter_config
from registry.adapters.safetensors import HeaderReader
from registry.adapters.upload import CONFIG_FILE, MANIFEST_FILE, WEIGHTS_FILE, build_manifest
from registry.base_models.service import base_model_info, known_names
from registry.settings import Settings
from registry.storage import ObjectStore, StoredObject
from workers.inputs import JobInputs

LIBRARIES = ("torch", "transformers", "peft", "tokenizers", "safetensors", "loraplex")


def library_versions() -> dict[str, str]:
    return {name: package_version(name) for name in LIBRARIES}


def check_adapter(folder: Path, inputs: JobInputs, settings: Settings) -> None:
    """The same checks an uploaded adapter gets: a trained one must pass them too."""
    config = parse_adapter_config((folder / CONFIG_FILE).read_bytes())
    reader = HeaderReader(settings.adapter_max_header_bytes, name=WEIGHTS_FILE)
    with open(folder / WEIGHTS_FILE, "rb") as f:
        while chunk := f.read(1 << 20):
            reader.feed(chunk)
    problems = check_lora_adapter(
        config,
        reader.finish(),
        base_model_info(inputs.base),
        base_model_names=known_names(inputs.base),
        base_name=inputs.base.name,
        max_rank=inputs.base.max_lora_rank,
    )
    if problems:
        raise RuntimeError(f"trained adapter failed its checks: {problems[0].reason}")


def _put_file(store: ObjectStore, path: Path, key: str) -> StoredObject:
    with store.writer(key) as writer:  # straight to its key, invisible until commit
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                writer.write(chunk)
        return writer.commit()


def publish(
    store: ObjectStore,
    folder: Path,
    inputs: JobInputs,
    extra: dict[str, Any],
    *,
    prefix: str | None = None,
) -> tuple[dict[str, Any], str, int]:
    """Write the files, then the manifest, under `prefix` (the version's by default; a
    checkpoint's lies below it). Returns (manifest, manifest sha256, bytes)."""
    prefix = prefix or inputs.prefix
    stored = [
        _put_file(store, folder / name, f"{prefix}/{name}") for name in (CONFIG_FILE, WEIGHTS_FILE)
    ]
    manifest = build_manifest(inputs.adapter, inputs.version, inputs.base.name, stored, prefix)
    manifest.update(extra)
    body = json.dumps(manifest, sort_keys=True, indent=1).encode()
    store.put_bytes(f"{prefix}/{MANIFEST_FILE}", body)  # last: the artifact is complete
    return manifest, hashlib.sha256(body).hexdigest(), sum(s.size for s in stored)
