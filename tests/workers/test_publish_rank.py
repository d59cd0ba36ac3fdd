"""A trained adapter gets the upload checks against its own base model's `max_lora_rank`
(issue 20, aim 2): above it, publishing fails with the rank, the base model and its maximum."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from registry.base_models.inspect import inspect_base_model
from registry.base_models.local_copy import source_for
from registry.models import BaseModel
from registry.settings import Settings
from tests.lora_files import make_adapter, make_base_model
from workers.publish import check_adapter


def _base(folder: Path, max_lora_rank: int) -> BaseModel:
    info = inspect_base_model(source_for(str(make_base_model(folder)), Settings()))
    return BaseModel(name="small", uri=str(folder), digest=info.digest, files=info.files,
                     total_bytes=info.total_bytes, architecture=info.architecture,
                     num_layers=info.num_layers, module_shapes=info.module_shapes,
                     config={**info.config, "model_type": info.model_type},
                     max_lora_rank=max_lora_rank)  # fmt: skip


@pytest.mark.parametrize(("r", "refused"), [(32, True), (16, False)])
def test_trained_adapter_above_its_base_models_maximum(
    tmp_path: Path, r: int, refused: bool
) -> None:
    inputs = SimpleNamespace(base=_base(tmp_path / "base", 16))
    folder = tmp_path / "trained"
    folder.mkdir()
    config, weights = make_adapter("small", r=r)
    (folder / "adapter_config.json").write_bytes(config)
    (folder / "adapter_model.safetensors").write_bytes(weights)
    if refused:
        with pytest.raises(RuntimeError, match="r 32 is above base model 'small''s maximum LoRA"):
            check_adapter(folder, inputs, Settings())  # type: ignore[arg-type]
    else:
        check_adapter(folder, inputs, Settings())  # type: ignore[arg-type]
