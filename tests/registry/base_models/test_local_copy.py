"""Loading a base model: every registered file verified, nothing unregistered, paths confined."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import boto3
import pytest

from registry.base_models.inspect import (
    ALL_FILES_KEY,
    BaseModelError,
    check_name,
    inspect_base_model,
    local_source,
    store_source,
)
from registry.base_models.local_copy import DigestMismatch, base_model_path, confined
from registry.models import BaseModel
from registry.settings import Settings
from tests.conftest import BUCKET, s3_store
from tests.registry.adapters.fakes import write_llama

TEMPLATE = '{"chat_template": "{{ messages[0].content }}"}'


def model_folder(path: Path) -> Path:
    folder = write_llama(path)
    (folder / "tokenizer_config.json").write_text(TEMPLATE)
    (folder / "generation_config.json").write_text('{"temperature": 0.6}')
    return folder


def row(uri: str, source_folder: Path, *, legacy: bool = False) -> BaseModel:
    info = inspect_base_model(local_source(source_folder))
    files = info.files
    if legacy:  # as registered before every file was recorded
        files = {n: d for n, d in files.items() if n.endswith((".json", ".safetensors"))}
        files = {n: d for n, d in files.items() if "config" not in n or n == "config.json"}
    return BaseModel(
        name="tiny",
        uri=uri,
        digest=hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest(),
        files=files,
        config={} if legacy else {ALL_FILES_KEY: True},
    )


def settings(home: Path, endpoint: str | None = None, **kw: object) -> Settings:
    return Settings(home=home, s3_endpoint_url=endpoint, s3_region="us-east-1", **kw)  # type: ignore[arg-type]


def test_every_top_level_file_is_registered(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "m")
    (folder / ".gitattributes").write_text("*.safetensors filter=lfs")
    (folder / "original").mkdir()
    (folder / "original" / "params.json").write_text("{}")
    info = inspect_base_model(local_source(folder))
    assert set(info.files) == {
        "config.json",
        "model.safetensors",
        "tokenizer_config.json",
        "generation_config.json",
    }
    assert info.files["tokenizer_config.json"] == hashlib.sha256(TEMPLATE.encode()).hexdigest()
    assert info.total_bytes == sum((folder / n).stat().st_size for n in info.files)


def test_pickles_next_to_safetensors_are_refused(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "m")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(BaseModelError, match="pytorch_model.bin.*remove them"):
        inspect_base_model(local_source(folder))


@pytest.mark.parametrize("name", ["..", "../x", "a/b", "a\\..\\b", "a\0b", "/etc/passwd", ""])
def test_unsafe_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises((BaseModelError, ValueError)):
        check_name(name)
    with pytest.raises(ValueError):
        confined(tmp_path, name)


def test_local_folder_is_copied_verified(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "m")
    (folder / ".cache").mkdir()  # e.g. huggingface-cli's download metadata: not copied
    base = row(str(folder), folder)
    path = base_model_path(base, settings(tmp_path / "home"))
    assert path != folder and sorted(p.name for p in path.iterdir()) == sorted(base.files)
    assert (path / "tokenizer_config.json").read_text() == TEMPLATE
    (folder / "tokenizer_config.json").write_text('{"chat_template": "changed"}')
    assert base_model_path(base, settings(tmp_path / "home")) == path  # the copy is kept


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("template", "tokenizer_config.json has sha256"),
        ("missing", "registered file.s. missing: generation_config.json"),
        ("extra", "not registered with it: special_tokens_map.json"),
    ],
)
def test_local_folder_that_changed_is_refused(tmp_path: Path, change: str, message: str) -> None:
    folder = model_folder(tmp_path / "m")
    base = row(f"file://{folder}", folder)
    if change == "template":
        (folder / "tokenizer_config.json").write_text('{"chat_template": "changed"}')
    elif change == "missing":
        (folder / "generation_config.json").unlink()
    else:
        (folder / "special_tokens_map.json").write_text("{}")
    home = tmp_path / "home"
    with pytest.raises(DigestMismatch, match=message):
        base_model_path(base, settings(home))
    assert not any((home / "cache").rglob("*.json"))  # nothing kept


def test_legacy_rows(tmp_path: Path) -> None:
    """Rows registered before every file was recorded: strict, unless ops allow it."""
    folder = model_folder(tmp_path / "m")
    base = row(str(folder), folder, legacy=True)
    assert "tokenizer_config.json" not in base.files
    with pytest.raises(DigestMismatch, match="not registered with it: generation_config.json"):
        base_model_path(base, settings(tmp_path / "home"))
    path = base_model_path(
        base, settings(tmp_path / "home", base_model_allow_unregistered_files=True)
    )
    assert (path / "tokenizer_config.json").read_text() == TEMPLATE
    (folder / "config.json").write_text('{"num_hidden_layers": 9}')  # registered: still checked
    with pytest.raises(DigestMismatch, match="config.json has sha256"):
        base_model_path(
            base, settings(tmp_path / "home2", base_model_allow_unregistered_files=True)
        )


def put(s3_endpoint: str, prefix: str, folder: Path) -> None:
    store = s3_store(s3_endpoint, prefix)
    for path in folder.iterdir():
        if path.is_file():
            store.put_bytes(path.name, path.read_bytes())


def test_s3_model_is_verified_file_by_file(tmp_path: Path, s3_endpoint: str) -> None:
    folder = model_folder(tmp_path / "m")
    prefix = f"bm-{uuid.uuid4().hex[:8]}"
    put(s3_endpoint, prefix, folder)
    uri = f"s3://{BUCKET}/{prefix}"
    base = row(uri, folder)
    store = s3_store(s3_endpoint, prefix)
    assert inspect_base_model(store_source(store, "")).files == base.files
    path = base_model_path(base, settings(tmp_path / "h1", s3_endpoint))
    assert (path / "tokenizer_config.json").read_text() == TEMPLATE

    store.put_bytes("tokenizer_config.json", b'{"chat_template": "changed"}')
    with pytest.raises(DigestMismatch, match="tokenizer_config.json has sha256"):
        base_model_path(base, settings(tmp_path / "h2", s3_endpoint))
    store.put_bytes("tokenizer_config.json", TEMPLATE.encode())
    store.put_bytes("chat_template.jinja", b"{{ 'injected' }}")
    with pytest.raises(DigestMismatch, match="not registered with it: chat_template.jinja"):
        base_model_path(base, settings(tmp_path / "h3", s3_endpoint))
    store.delete("chat_template.jinja")
    store.delete("generation_config.json")
    with pytest.raises(DigestMismatch, match="missing: generation_config.json"):
        base_model_path(base, settings(tmp_path / "h4", s3_endpoint))


def test_s3_keys_cannot_write_outside_the_cache(tmp_path: Path, s3_endpoint: str) -> None:
    folder = model_folder(tmp_path / "m")
    prefix = f"bm-{uuid.uuid4().hex[:8]}"
    put(s3_endpoint, prefix, folder)
    victim = tmp_path / "home" / "victim"  # where "../../../victim" led from the old tmp folder
    victim.parent.mkdir(parents=True)
    victim.write_text("keep me")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/../../../victim", Body=b"")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/a\\..\\..\\x", Body=b"")
    base = row(f"s3://{BUCKET}/{prefix}", folder)
    with pytest.raises(DigestMismatch, match="cannot be used"):
        base_model_path(base, settings(tmp_path / "home", s3_endpoint))
    assert victim.read_text() == "keep me"
