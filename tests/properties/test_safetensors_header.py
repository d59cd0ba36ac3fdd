"""The pure-Python safetensors header reader against the `safetensors` library itself.

Files are written by the library's own serializer for random tensor sets; our reader must
report the same names, dtypes, shapes and offsets the library reads back, however the file
is chunked. Mutated files must either parse to what the library reads, or fail with our own
`SafetensorsError` and nothing else.
"""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import safetensors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.adapters.safetensors import HeaderReader, SafetensorsError, parse_header

# Every dtype the library writes: its API name -> the name in the header, and bytes per element.
LIBRARY_DTYPES = {
    "bool": ("BOOL", 1), "uint8": ("U8", 1), "int8": ("I8", 1), "int16": ("I16", 2),
    "uint16": ("U16", 2), "int32": ("I32", 4), "uint32": ("U32", 4), "int64": ("I64", 8),
    "uint64": ("U64", 8), "float16": ("F16", 2), "bfloat16": ("BF16", 2),
    "float32": ("F32", 4), "float64": ("F64", 8), "complex64": ("C64", 8),
    "float8_e4m3fn": ("F8_E4M3", 1), "float8_e5m2": ("F8_E5M2", 1),
    "float8_e8m0fnu": ("F8_E8M0", 1), "float8_e4m3fnuz": ("F8_E4M3FNUZ", 1),
    "float8_e5m2fnuz": ("F8_E5M2FNUZ", 1),
}  # fmt: skip
_NAMES = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
Tensors = dict[str, tuple[str, list[int], bytes]]  # name -> (library dtype, shape, data)


@st.composite
def tensor_sets(draw: st.DrawFn) -> Tensors:
    names = draw(st.lists(_NAMES.filter(lambda n: n != "__metadata__"), max_size=6, unique=True))
    tensors: Tensors = {}
    for name in names:
        dtype = draw(st.sampled_from(sorted(LIBRARY_DTYPES)))
        shape = draw(st.lists(st.integers(0, 5), max_size=3))
        size = LIBRARY_DTYPES[dtype][1] * math.prod(shape)
        tensors[name] = (dtype, shape, draw(st.binary(min_size=size, max_size=size)))
    return tensors


# Not {}: with no tensors the library writes `{},"__metadata__":{}}` for it (its own bug).
_METADATA = st.none() | st.dictionaries(_NAMES, st.text(max_size=8), min_size=1, max_size=3)


def library_bytes(tensors: Tensors, metadata: dict[str, str] | None) -> bytes:
    """The file `safetensors.serialize` writes (as `safetensors.numpy.save` calls it)."""
    buffers = {
        name: np.frombuffer(data, dtype=np.uint8).copy() for name, (_, _, data) in tensors.items()
    }  # kept alive while serialize reads them
    specs = {
        name: safetensors.TensorSpec(
            dtype=dtype,
            shape=tuple(shape),
            data_ptr=buffers[name].ctypes.data,
            data_len=len(data),
        )
        for name, (dtype, shape, data) in tensors.items()
    }
    return bytes(safetensors.serialize(specs, metadata=metadata))


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0, *sorted({min(c, len(data)) for c in cuts}), len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def assert_same_as_library(
    data: bytes, tensors: dict[str, tuple[str, tuple[int, ...], bytes]]
) -> None:
    """`tensors`: what the library read (name -> dtype, shape, bytes)."""
    header = parse_header(data)
    assert set(header.tensors) == set(tensors)
    base = header.header_size
    for name, (dtype, shape, raw) in tensors.items():
        info = header.tensors[name]
        assert (info.dtype, info.shape) == (dtype, shape)
        assert data[base + info.start : base + info.end] == raw  # the offsets point at the data


def library_read(data: bytes) -> dict[str, tuple[str, tuple[int, ...], bytes]]:
    return {
        name: (t["dtype"], tuple(t["shape"]), bytes(t["data"]))
        for name, t in safetensors.deserialize(data)
    }


@settings(max_examples=300, deadline=None)
@given(tensors=tensor_sets(), metadata=_METADATA, cuts=st.lists(st.integers(0, 600), max_size=10))
def test_reads_what_the_library_wrote(
    tensors: Tensors, metadata: dict[str, str] | None, cuts: list[int]
) -> None:
    data = library_bytes(tensors, metadata)
    assert_same_as_library(data, library_read(data))
    header = parse_header(data)
    assert header.metadata == (metadata or {})
    n = struct.unpack("<Q", data[:8])[0]
    offsets = {
        k: v["data_offsets"] for k, v in json.loads(data[8 : 8 + n]).items() if k != "__metadata__"
    }
    assert {k: [t.start, t.end] for k, t in header.tensors.items()} == offsets
    # Streaming: any chunking gives the same header.
    reader = HeaderReader(name="w")
    for chunk in chunked(data, cuts):
        reader.feed(chunk)
    assert reader.finish() == header


_MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["set", "insert", "delete"]), st.integers(0, 10_000), st.integers(0, 255)
    ),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for op, pos, value in ops:
        at = pos % (len(buf) + 1)
        if op == "insert":
            buf.insert(at, value)
        elif buf and op == "set":
            buf[at % len(buf)] = value
        elif buf:
            del buf[at % len(buf)]
    return bytes(buf)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tensors=tensor_sets(),
    metadata=_METADATA,
    ops=_MUTATIONS,
    cuts=st.lists(st.integers(0, 600), max_size=6),
)
def test_mutations_fail_only_with_our_error_or_agree_with_the_library(
    tensors: Tensors,
    metadata: dict[str, str] | None,
    ops: list[tuple[str, int, int]],
    cuts: list[int],
) -> None:
    data = mutate(library_bytes(tensors, metadata), ops)
    try:
        header = parse_header(data)
    except SafetensorsError:
        header = None
    # The streaming reader agrees with the whole-file one, whatever the chunking.
    reader = HeaderReader(name="safetensors file")
    try:
        for chunk in chunked(data, cuts):
            reader.feed(chunk)
        assert reader.finish() == header
    except SafetensorsError:
        assert header is None
    if header is not None:  # we accepted it: the library must read exactly the same
        assert_same_as_library(data, library_read(data))


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=64), length=st.integers(0, 1 << 64 - 1))
def test_random_bytes_behind_any_length_fail_cleanly(data: bytes, length: int) -> None:
    raw = struct.pack("<Q", length) + data
    try:
        parse_header(raw)
    except SafetensorsError:
        return
    library_read(raw)  # accepted by us: the library accepts it too


def test_regression_fnuz_float8_files_from_the_library_are_read() -> None:
    """Found by test_reads_what_the_library_wrote: F8_E4M3FNUZ / F8_E5M2FNUZ were refused as
    unknown dtypes although the library writes them."""
    tensors: Tensors = {
        "a": ("float8_e4m3fnuz", [2], b"\x01\x02"),
        "b": ("float8_e5m2fnuz", [1], b"\x03"),
    }
    header = parse_header(library_bytes(tensors, None))
    assert {n: (t.dtype, t.shape) for n, t in header.tensors.items()} == {
        "a": ("F8_E4M3FNUZ", (2,)),
        "b": ("F8_E5M2FNUZ", (1,)),
    }
