from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from registry.base_models.inspect import (
    BaseModelError,
    BaseModelInfo,
    inspect_base_model,
    local_source,
    store_source,
)
from registry.storage import LocalObjectStore, open_store
from tests.registry.adapters.fakes import (
    MODULE_SHAPES,
    llama_tensors,
    safetensors_bytes,
    write_llama,
)


def inspect_dir(path: Path) -> BaseModelInfo:
    return inspect_base_model(local_source(path))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_single_file_model(tmp_path: Path) -> None:
    model = write_llama(tmp_path / "tiny")
    (model / "tokenizer.json").write_text("{}")  # a loader reads it: part of the digest
    info = inspect_dir(model)
    assert info.files == {
        "config.json": sha(model / "config.json"),
        "model.safetensors": sha(model / "model.safetensors"),
        "tokenizer.json": sha(model / "tokenizer.json"),
    }
    lines = "".join(f"{name} {digest}\n" for name, digest in sorted(info.files.items()))
    assert info.digest == hashlib.sha256(lines.encode()).hexdigest()
    assert info.total_bytes == sum((model / n).stat().st_size for n in info.files)
    assert info.architecture == "LlamaForCausalLM" and info.model_type == "llama"
    assert info.num_layers == 2
    assert info.module_shapes == MODULE_SHAPES
    assert info.module_shapes["self_attn.q_proj"] == [64, 64]
    assert info.module_shapes["self_attn.k_proj"] == [32, 64]
    assert info.module_shapes["mlp.down_proj"] == [64, 172]
    assert info.config == {
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 172,
        "vocab_size": 128,
    }


def test_head_dim_is_kept_and_missing_fields_are_none(tmp_path: Path) -> None:
    model = write_llama(tmp_path / "m", head_dim=16, architectures=[], model_type=None)
    info = inspect_dir(model)
    assert info.config["head_dim"] == 16
    assert info.architecture is None and info.model_type is None


def test_digest_is_stable_and_follows_the_files(tmp_path: Path) -> None:
    model = write_llama(tmp_path / "a")
    first = inspect_dir(model)
    assert inspect_dir(model) == first
    copy = tmp_path / "elsewhere" / "b"
    shutil.copytree(model, copy)
    (copy / ".gitattributes").write_text("dot-files do not count")
    (copy / "sub").mkdir()
    (copy / "sub" / "other.safetensors").write_bytes(b"subfolders are ignored")
    assert inspect_dir(copy).digest == first.digest
    (copy / "README.md").write_text("every other top-level file counts")
    assert inspect_dir(copy).digest != first.digest
    (copy / "README.md").unlink()

    weights = bytearray((copy / "model.safetensors").read_bytes())
    weights[-1] = 1  # one byte of tensor data
    (copy / "model.safetensors").write_bytes(bytes(weights))
    changed = inspect_dir(copy)
    assert changed.digest != first.digest
    assert changed.files["config.json"] == first.files["config.json"]

    write_llama(copy, rms_norm_eps=1e-6)  # config.json changes too
    assert inspect_dir(copy).digest not in (first.digest, changed.digest)


def test_sharded_model(tmp_path: Path) -> None:
    model = write_llama(tmp_path / "sharded", shards=2)
    # A duplicate full checkpoint next to the shards (as some repos ship) is hashed, not read.
    (model / "consolidated.safetensors").write_bytes(b"not even safetensors")
    info = inspect_dir(model)
    index = json.loads((model / "model.safetensors.index.json").read_text())
    layer0 = index["weight_map"]["model.layers.0.self_attn.q_proj.weight"]
    assert layer0 == "model-00002-of-00002.safetensors"
    assert set(info.files) == {
        "config.json",
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "consolidated.safetensors",
    }
    assert info.module_shapes == MODULE_SHAPES
    assert info.digest != inspect_dir(write_llama(tmp_path / "single")).digest


def test_shards_without_an_index(tmp_path: Path) -> None:
    model = write_llama(tmp_path / "m", shards=2)
    (model / "model.safetensors.index.json").unlink()
    assert inspect_dir(model).module_shapes == MODULE_SHAPES


def test_index_naming_a_missing_shard(tmp_path: Path) -> None:
    model = write_llama(tmp_path / "m", shards=2)
    (model / "model-00001-of-00002.safetensors").unlink()
    with pytest.raises(BaseModelError, match="missing: model-00001-of-00002.safetensors"):
        inspect_dir(model)


def test_index_pointing_at_the_wrong_shard(tmp_path: Path) -> None:
    model = write_llama(tmp_path / "m", shards=2)
    path = model / "model.safetensors.index.json"
    index = json.loads(path.read_text())
    shards = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
    (other,) = shards - {index["weight_map"]["lm_head.weight"]}
    index["weight_map"]["lm_head.weight"] = other
    path.write_text(json.dumps(index))
    with pytest.raises(BaseModelError, match="puts tensor .* which lacks it"):
        inspect_dir(model)


@pytest.mark.parametrize(
    "index", ['{"weight_map": []}', '{"weight_map": {"x": "../a.safetensors"}}']
)
def test_invalid_index(tmp_path: Path, index: str) -> None:
    model = write_llama(tmp_path / "m")
    (model / "model.safetensors.index.json").write_text(index)
    with pytest.raises(BaseModelError, match="weight_map must map"):
        inspect_dir(model)


def test_missing_config(tmp_path: Path) -> None:
    model = write_llama(tmp_path / "m")
    (model / "config.json").unlink()
    with pytest.raises(BaseModelError, match="config.json is missing"):
        inspect_dir(model)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "config.json is not valid JSON"),
        ("[1, 2]", "config.json must be a JSON object"),
        ('{"model_type": "llama"}', "num_hidden_layers must be a positive integer, not None"),
        ('{"num_hidden_layers": "2"}', "num_hidden_layers must be a positive integer"),
    ],
)
def test_invalid_config(tmp_path: Path, content: str, message: str) -> None:
    model = write_llama(tmp_path / "m")
    (model / "config.json").write_text(content)
    with pytest.raises(BaseModelError, match=message):
        inspect_dir(model)


def test_no_weights(tmp_path: Path) -> None:
    model = write_llama(tmp_path / "m")
    (model / "model.safetensors").unlink()
    with pytest.raises(BaseModelError, match="no \\*.safetensors weight files"):
        inspect_dir(model)


def test_pickle_weights_are_refused(tmp_path: Path) -> None:
    model = write_llama(tmp_path / "m")
    (model / "model.safetensors").rename(model / "pytorch_model.bin")
    with pytest.raises(BaseModelError) as err:
        inspect_dir(model)
    assert "pytorch_model.bin" in str(err.value) and "convert them to safetensors" in str(err.value)


def test_truncated_weight_file(tmp_path: Path) -> None:
    model = write_llama(tmp_path / "m")
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[:-100])
    with pytest.raises(BaseModelError, match="^model.safetensors: file is .* truncated"):
        inspect_dir(model)


def test_layers_must_agree(tmp_path: Path) -> None:
    tensors = llama_tensors()
    tensors["model.layers.1.mlp.up_proj.weight"] = ("F32", [100, 64])
    model = write_llama(tmp_path / "m", tensors=tensors)
    with pytest.raises(BaseModelError, match=r"layer 1 differs from layer 0 \(mlp.up_proj"):
        inspect_dir(model)


def test_config_with_more_layers_than_the_weights(tmp_path: Path) -> None:
    model = write_llama(tmp_path / "m", num_hidden_layers=3)
    with pytest.raises(BaseModelError, match=r"num_hidden_layers=3 .* layer\(s\) 2"):
        inspect_dir(model)


def test_extra_layers_past_num_hidden_layers_are_ignored(tmp_path: Path) -> None:
    tensors = llama_tensors(layers=3)  # e.g. a multi-token-prediction layer
    tensors["model.layers.2.mlp.up_proj.weight"] = ("F32", [100, 64])
    model = write_llama(tmp_path / "m", tensors=tensors)
    assert inspect_dir(model).module_shapes == MODULE_SHAPES


def test_non_llama_weight_names_are_refused(tmp_path: Path) -> None:
    tensors = {"transformer.h.0.attn.c_attn.weight": ("F32", [64, 192])}
    model = write_llama(tmp_path / "m", tensors=tensors)
    with pytest.raises(BaseModelError, match="Llama-style weight names"):
        inspect_dir(model)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(BaseModelError, match="is not a folder"):
        inspect_dir(tmp_path / "nope")


def put_model(store: LocalObjectStore, prefix: str, folder: Path) -> None:
    for path in folder.iterdir():
        store.put_bytes(f"{prefix}{path.name}", path.read_bytes())


@pytest.mark.parametrize("shards", [1, 2])
def test_object_store_source_matches_the_local_one(tmp_path: Path, shards: int) -> None:
    model = write_llama(tmp_path / "m", shards=shards)
    store = LocalObjectStore(str(tmp_path / "store"), create=True)
    put_model(store, "models/tiny/", model)
    store.put_bytes("models/tiny-other/config.json", b"{}")  # a sibling prefix is not included
    local = inspect_dir(model)
    assert inspect_base_model(store_source(store, "models/tiny")) == local
    assert inspect_base_model(store_source(store, "/models/tiny/")) == local


def test_store_opened_from_a_url_at_its_root(tmp_path: Path) -> None:
    model = write_llama(tmp_path / "m")
    store = open_store(f"file://{tmp_path / 'bucket'}", create_bucket=True)
    for path in model.iterdir():
        store.put_bytes(path.name, path.read_bytes())
    with store.writer() as unfinished:  # its data sits in _tmp/ until commit or abort
        unfinished.write(b"not part of the model")
        source = store_source(store, "")
        assert any(key.startswith("_tmp/") for key in store.list_keys())
        assert not any(name.startswith("_tmp/") for name in source.list_files())
        assert inspect_base_model(source).digest == inspect_dir(model).digest


def test_store_source_without_config(tmp_path: Path) -> None:
    store = LocalObjectStore(str(tmp_path / "store"), create=True)
    store.put_bytes("models/x/model.safetensors", safetensors_bytes(llama_tensors()))
    with pytest.raises(BaseModelError, match="config.json is missing"):
        inspect_base_model(store_source(store, "models/x"))
