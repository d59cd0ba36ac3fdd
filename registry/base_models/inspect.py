"""What the registry knows about a base model without loading it: file digests, layer shapes.

Only a Hugging Face model folder in safetensors form is accepted: `config.json` plus top-level
`*.safetensors` weights (sharded with `model.safetensors.index.json`, or not). Each file is
streamed once: hashed, and its safetensors header parsed from the first bytes (memory stays
flat). Layer shapes come from the headers, so an adapter can be checked against the weights
actually served rather than against config arithmetic.

Decisions:

* Every top-level file is hashed into `files` (and so into the digest): weights, config,
  tokenizer files, `tokenizer_config.json` with its chat template, `generation_config.json`,
  anything else a loader might read. Loading verifies all of them (`local_copy.py`).
* Files in subfolders and dot-files are ignored (loaders read neither) and never copied.
* Pickle files (`*.bin`, `*.pt`, ...) are refused even next to safetensors weights: a loader
  may fall back to them, and they can run code. Files other than weights are capped at
  `MAX_AUX_FILE_BYTES`; the chat template's files (`chat_template.py`) at `MAX_JSON_BYTES`:
  they are read whole, to find out whether the template renders tool calls.
* Only weights the index names (or all top-level `*.safetensors` without an index) are parsed;
  other `*.safetensors` files (e.g. a duplicate `consolidated.safetensors`) are only hashed.
* Names must be plain file names (no "..", "/", "\\", NUL): they become local paths.
* Only decoders with Llama-style names (`model.layers.<i>.<module>.weight`) are supported, and
  every layer in `range(num_hidden_layers)` must have the same linear modules with the same
  shapes as layer 0 (layers past that range, e.g. multi-token-prediction heads, are ignored).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from registry.adapters.safetensors import HeaderReader, SafetensorsError, SafetensorsHeader
from registry.base_models.chat_template import TEMPLATE_FILES, ChatTemplate, find_chat_template
from registry.storage.base import TMP_PREFIX, ObjectStore

CONFIG = "config.json"
INDEX = "model.safetensors.index.json"
MAX_JSON_BYTES = 64 << 20
MAX_AUX_FILE_BYTES = 1 << 30  # a non-weight file (tokenizer.json is ~10-35 MiB)
BASE_MODEL_MAX_HEADER_BYTES = 100 << 20  # ops-registered weights: the format's own limit
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
CONFIG_FIELDS = (
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "vocab_size",
    "head_dim",
)
# Marks rows whose `files` has every top-level file (rows registered before list fewer).
ALL_FILES_KEY = "all_files_recorded"
_LAYER_WEIGHT = re.compile(r"model\.layers\.(\d+)\.(.+)\.weight")


class BaseModelError(ValueError):
    """The files are not a base model the registry can use; the message says why."""


@dataclass(frozen=True)
class BaseModelInfo:
    digest: str  # sha256 over sorted "<name> <sha256>\n" lines of `files`
    files: dict[str, str]  # file name -> sha256, every top-level file of the folder
    total_bytes: int
    architecture: str | None
    model_type: str | None
    num_layers: int
    module_shapes: dict[str, list[int]]  # "self_attn.q_proj" -> [out_features, in_features]
    config: dict[str, Any]
    chat_template: ChatTemplate | None = None  # read at registration only, not stored


class BaseModelSource(Protocol):
    def list_files(self) -> list[str]:
        """Names of the folder's top-level files, dot-files left out, each `check_name`d."""
        ...

    def iter_chunks(self, name: str) -> Iterator[bytes]: ...


class _LocalSource:
    def __init__(self, root: Path) -> None:
        self.root = root

    def list_files(self) -> list[str]:
        if not self.root.is_dir():
            raise BaseModelError(f"{self.root} is not a folder")
        return sorted(
            check_name(p.name) for p in self.root.iterdir() if _listed(p.name) and p.is_file()
        )

    def iter_chunks(self, name: str) -> Iterator[bytes]:
        with open(self.root / name, "rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk


class _StoreSource:
    def __init__(self, store: ObjectStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def list_files(self) -> list[str]:
        keys = self.store.list_keys(self.prefix)
        if not self.prefix:  # the store's own temporary area is not part of the model
            keys = (k for k in keys if not k.startswith(TMP_PREFIX))
        names = (k[len(self.prefix) :] for k in keys)
        return sorted(check_name(n) for n in names if "/" not in n and _listed(n))

    def iter_chunks(self, name: str) -> Iterator[bytes]:
        return self.store.iter_chunks(self.prefix + name)


def check_name(name: str) -> str:
    """`name` if it is a plain file name, safe to use as a local path; else BaseModelError."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0") or name != name.strip():
        raise BaseModelError(
            f"file name {name!r} cannot be used: a base model's files must have plain names "
            "(no '/', '\\', '..', NUL or surrounding spaces)"
        )
    return name


def _listed(name: str) -> bool:
    return not name.startswith(".")


def local_source(path: str | Path) -> BaseModelSource:
    """A model folder on local disk (symlinked files, as in a Hugging Face cache, are followed)."""
    return _LocalSource(Path(path))


def store_source(store: ObjectStore, prefix: str) -> BaseModelSource:
    """The files under `prefix` of an object store ("" for the whole store)."""
    return _StoreSource(store, prefix)


def inspect_base_model(source: BaseModelSource) -> BaseModelInfo:
    top = set(source.list_files())
    if CONFIG not in top:
        raise BaseModelError(
            "config.json is missing: a base model is a Hugging Face model folder "
            "(config.json + *.safetensors weights)"
        )
    files: dict[str, str] = {}
    total = 0

    def read_json(name: str) -> dict[str, Any]:
        nonlocal total
        data, files[name] = _read_small(source, name)
        total += len(data)
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise BaseModelError(f"{name} is not valid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise BaseModelError(f"{name} must be a JSON object")
        return doc

    config = read_json(CONFIG)
    num_layers = config.get("num_hidden_layers")
    if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
        raise BaseModelError(
            f"config.json: num_hidden_layers must be a positive integer, not {num_layers!r}"
        )
    weight_map = _weight_map(read_json(INDEX)) if INDEX in top else None
    weights = _weight_files(top, weight_map)

    headers: dict[str, SafetensorsHeader] = {}
    for name in weights:
        reader = HeaderReader(BASE_MODEL_MAX_HEADER_BYTES, name=name)
        digest = hashlib.sha256()
        try:
            with chunks_of(source, name) as chunks:
                for chunk in chunks:
                    digest.update(chunk)
                    reader.feed(chunk)
            headers[name] = reader.finish()
        except SafetensorsError as e:
            raise BaseModelError(str(e)) from None
        files[name] = digest.hexdigest()
        total += reader.total_bytes
    if weight_map is not None:
        for tensor, shard in weight_map.items():
            if tensor not in headers[shard].tensors:
                raise BaseModelError(f"{INDEX} puts tensor {tensor!r} in {shard}, which lacks it")

    templates: dict[str, bytes] = {}
    for name in sorted(top - files.keys()):  # tokenizer, chat template, generation config...
        if name in TEMPLATE_FILES:  # read as hashed: the probed template is the digested one
            templates[name], files[name] = _read_small(source, name)
            total += len(templates[name])
            continue
        files[name], size = _hash(source, name)
        total += size

    architectures = config.get("architectures")
    model_type = config.get("model_type")
    lines = "".join(f"{name} {sha}\n" for name, sha in sorted(files.items()))
    return BaseModelInfo(
        digest=hashlib.sha256(lines.encode()).hexdigest(),
        files=files,
        total_bytes=total,
        architecture=str(architectures[0])
        if isinstance(architectures, list) and architectures
        else None,
        model_type=model_type if isinstance(model_type, str) else None,
        num_layers=num_layers,
        module_shapes=_module_shapes(headers, num_layers),
        config={k: config[k] for k in CONFIG_FIELDS if k in config},
        chat_template=find_chat_template(templates),
    )


@contextlib.contextmanager
def chunks_of(source: BaseModelSource, name: str) -> Iterator[Iterator[bytes]]:
    """The file's chunks; the stream is closed even if reading stops early."""
    chunks = source.iter_chunks(name)
    try:
        yield chunks
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _read_small(source: BaseModelSource, name: str) -> tuple[bytes, str]:
    buf = bytearray()
    with chunks_of(source, name) as chunks:
        for chunk in chunks:
            buf += chunk
            if len(buf) > MAX_JSON_BYTES:
                raise BaseModelError(f"{name} is larger than {MAX_JSON_BYTES >> 20} MiB")
    return bytes(buf), hashlib.sha256(buf).hexdigest()


def _hash(source: BaseModelSource, name: str) -> tuple[str, int]:
    """sha256 and size of a file that is not parsed; non-weight files are capped."""
    digest, size = hashlib.sha256(), 0
    cap = None if name.endswith(".safetensors") else MAX_AUX_FILE_BYTES
    with chunks_of(source, name) as chunks:
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            if cap is not None and size > cap:
                raise BaseModelError(
                    f"{name} is larger than {cap >> 20:,} MiB; remove it from the model "
                    "folder if loaders do not need it"
                )
    return digest.hexdigest(), size


def _weight_map(index: dict[str, Any]) -> dict[str, str]:
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not all(
        isinstance(v, str) and "/" not in v and v.endswith(".safetensors")
        for v in weight_map.values()
    ):
        raise BaseModelError(
            f"{INDEX}: weight_map must map tensor names to *.safetensors files in the folder"
        )
    return weight_map


def _weight_files(top: set[str], weight_map: dict[str, str] | None) -> list[str]:
    if weight_map is not None:
        missing = sorted(set(weight_map.values()) - top)
        if missing:
            raise BaseModelError(f"{INDEX} names shard(s) that are missing: {', '.join(missing)}")
        return sorted(set(weight_map.values()))
    weights = sorted(n for n in top if n.endswith(".safetensors"))
    pickles = sorted(n for n in top if n.endswith(PICKLE_SUFFIXES))
    if weights and pickles:
        raise BaseModelError(
            f"pickle files ({', '.join(pickles)}) are next to the safetensors weights: a "
            "loader may read them, and they can run code when loaded; remove them"
        )
    if weights:
        return weights
    if pickles:
        raise BaseModelError(
            f"the weights are pickle files ({', '.join(pickles)}), which can run code when "
            "loaded and are not accepted: convert them to safetensors, e.g. load the model and "
            "call save_pretrained(path, safe_serialization=True)"
        )
    raise BaseModelError("no *.safetensors weight files next to config.json")


def _module_shapes(headers: dict[str, SafetensorsHeader], num_layers: int) -> dict[str, list[int]]:
    layers: dict[int, dict[str, list[int]]] = {}
    for header in headers.values():
        for tensor in header.tensors.values():
            m = _LAYER_WEIGHT.fullmatch(tensor.name)
            if m and len(tensor.shape) == 2 and int(m[1]) < num_layers:
                layers.setdefault(int(m[1]), {})[m[2]] = list(tensor.shape)
    missing = [i for i in range(num_layers) if i not in layers]
    if missing:
        raise BaseModelError(
            f"config.json says num_hidden_layers={num_layers} but the weights have no 2-D "
            f"'model.layers.<i>.….weight' tensors for layer(s) {_brief(missing)}: only decoder "
            "models with Llama-style weight names are supported"
        )
    first = layers[0]
    for i in range(1, num_layers):
        if layers[i] != first:
            diff = sorted(
                k for k in first.keys() | layers[i].keys() if first.get(k) != layers[i].get(k)
            )
            detail = ", ".join(f"{k} {first.get(k)} vs {layers[i].get(k)}" for k in diff[:3])
            raise BaseModelError(
                f"layer {i} differs from layer 0 ({detail}): models whose layers have "
                "different linear modules or shapes are not supported"
            )
    return dict(sorted(first.items()))


def _brief(items: list[int]) -> str:
    shown = ", ".join(map(str, items[:5]))
    return shown + (f" and {len(items) - 5} more" if len(items) > 5 else "")
