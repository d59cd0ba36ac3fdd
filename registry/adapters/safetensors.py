"""Safetensors header parsing in pure Python, fed incrementally as a file streams in.

Format (https://github.com/huggingface/safetensors): an 8-byte little-endian u64 N, N bytes
of UTF-8 JSON (an object: tensor name -> {dtype, shape, data_offsets}, plus an optional
"__metadata__" str -> str map), then the data section. Offsets are relative to the data
section; the tensors must cover it exactly, without overlaps or holes.

Decisions:

* Stricter than the reference reader where it costs nothing: duplicate JSON keys and a header
  not starting with "{" are refused, so two readers cannot disagree about what a file holds.
* `HeaderReader.feed` raises as soon as something is wrong (bad header, more bytes than the
  header describes), so an upload can be aborted early; `finish` checks the exact size.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_HEADER_BYTES = 100 << 20  # the format's own limit (the reference reader's)
# What a LoRA adapter needs: rank 64 on 7 projections of 80 layers is ~1,100 tensors at ~120
# bytes each (~130 KB). Parsing runs in Python (~0.6 s and ~12 MB per MB of header), so the
# default reader refuses more; uploads pass `Settings.adapter_max_header_bytes`.
ADAPTER_MAX_HEADER_BYTES = 1 << 20

# dtype -> size in bits (the sub-byte float formats are packed).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "F8_E5M2FNUZ": 8, "F8_E4M3FNUZ": 8,  # written by the safetensors library too
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64,
}  # fmt: skip

_MAGIC = (*(bytes([0x80, proto]) for proto in range(2, 6)), b"PK\x03\x04")  # pickle 2-5, zip


class SafetensorsError(ValueError):
    """The bytes are not a valid safetensors file; the message says what is wrong."""


_Fail = Callable[[str], SafetensorsError]


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int  # offsets relative to the start of the data section
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    header_size: int  # 8 + N

    @property
    def data_size(self) -> int:
        return max((t.end for t in self.tensors.values()), default=0)

    @property
    def file_size(self) -> int:
        return self.header_size + self.data_size


class HeaderReader:
    """Feed the file's bytes as they stream; the header is parsed as soon as its bytes are in.

    Only the header's bytes are buffered. `file_size`, when the caller knows it up front,
    lets a header length larger than the file be reported before any further data arrives.
    """

    def __init__(
        self,
        max_header_bytes: int = ADAPTER_MAX_HEADER_BYTES,
        *,
        name: str = "safetensors file",
        file_size: int | None = None,
    ) -> None:
        self.max_header_bytes = max_header_bytes
        self.name = name
        self.file_size = file_size
        self._buf = bytearray()
        self._n: int | None = None
        self._header: SafetensorsHeader | None = None
        self._total = 0
        self._error: SafetensorsError | None = None

    @property
    def header(self) -> SafetensorsHeader | None:
        return self._header

    @property
    def total_bytes(self) -> int:
        return self._total

    def feed(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._total += len(data)
        try:
            if self._header is None:
                self._consume(memoryview(data))
            if self._header is not None and self._total > self._header.file_size:
                raise self._fail(
                    f"file is longer than its header describes: {self._total:,} bytes so far, "
                    f"expected {self._header.file_size:,}"
                )
        except SafetensorsError as e:
            self._error = e
            raise

    def finish(self) -> SafetensorsHeader:
        """The header, once the whole file was fed and its size matches the header exactly."""
        if self._error is not None:
            raise self._error
        if self._n is None:
            raise self._fail(
                f"file is {self._total:,} bytes, too short to be a safetensors file "
                "(it needs at least the 8-byte header length)"
            )
        if self._header is None:
            raise self._too_long(self._total)
        if self._total != self._header.file_size:
            h = self._header
            raise self._fail(
                f"file is {self._total:,} bytes but its header describes {h.file_size:,} "
                f"({h.header_size:,} of header + {h.data_size:,} of tensor data): "
                "truncated or padded?"
            )
        return self._header

    def _consume(self, view: memoryview) -> None:
        while self._header is None:
            target = 8 if self._n is None else 8 + self._n
            take = target - len(self._buf)
            self._buf += view[:take]
            view = view[take:]
            if len(self._buf) < target:
                return
            if self._n is None:
                self._n = struct.unpack("<Q", self._buf)[0]
                self._check_length()
            else:
                self._header = _parse_json_header(bytes(self._buf[8:]), self._n, self._fail)
                self._buf = bytearray()

    def _check_length(self) -> None:
        if self._n is None:
            raise RuntimeError("the header length is not read yet")
        if self.file_size is not None and 8 + self._n > self.file_size:
            raise self._too_long(self.file_size)
        if self._n > self.max_header_bytes:
            limit = self.max_header_bytes
            raise self._fail(
                f"header length {self._n:,} is larger than the limit of {limit:,} bytes"
            )

    def _too_long(self, size: int) -> SafetensorsError:
        return self._fail(f"header length {self._n:,} is larger than the file ({size:,} bytes)")

    def _fail(self, message: str) -> SafetensorsError:
        return SafetensorsError(f"{self.name}: {message}")


def parse_header(
    data: bytes,
    *,
    name: str = "safetensors file",
    max_header_bytes: int = ADAPTER_MAX_HEADER_BYTES,
) -> SafetensorsHeader:
    """Parse a whole file held in memory; its size must match the header exactly."""
    reader = HeaderReader(max_header_bytes, name=name, file_size=len(data))
    reader.feed(data)
    return reader.finish()


def read_header(
    chunks: Iterable[bytes],
    *,
    name: str = "safetensors file",
    max_header_bytes: int = ADAPTER_MAX_HEADER_BYTES,
) -> SafetensorsHeader:
    """Read only the chunks the header needs (the total size is not checked), then close them."""
    reader = HeaderReader(max_header_bytes, name=name)
    iterator = iter(chunks)
    try:
        for chunk in iterator:
            reader.feed(chunk)
            if reader.header is not None:
                return reader.header
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
    return reader.finish()  # raises: the stream ended before the header did


def looks_like_pickle(first_bytes: bytes) -> bool:
    """Whether a file starts like a pickle (protocol 2-5) or a zip (torch.save's format).

    A safetensors header length can start with the same bytes (640 is b"\\x80\\x02\\0..."), so
    the magic counts only if the bytes cannot start a safetensors file: the 8-byte length is
    over the 100 MiB header limit (as it is for real pickles and zips), or offset 8 is there
    and is not the header's "{". The first 8 bytes are enough; 9 or more are better.
    """
    if not first_bytes.startswith(_MAGIC):
        return False
    if len(first_bytes) < 8 or struct.unpack("<Q", first_bytes[:8])[0] > DEFAULT_MAX_HEADER_BYTES:
        return True
    return len(first_bytes) > 8 and first_bytes[8:9] != b"{"


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _parse_json_header(raw: bytes, n: int, fail: _Fail) -> SafetensorsHeader:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise fail(f"header is not valid UTF-8 (byte {e.start:,} of the header)") from None
    if not text.startswith("{"):
        raise fail("header must be a JSON object starting with '{'")
    try:
        doc = json.loads(text, object_pairs_hook=_reject_duplicates)
    except ValueError as e:
        raise fail(f"header is not valid JSON: {e}") from None
    metadata = doc.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise fail("__metadata__ must be a JSON object mapping strings to strings")
    tensors: dict[str, TensorInfo] = {}
    for tname, entry in doc.items():
        tensors[tname] = _tensor_info(tname, entry, fail)
    _check_coverage(tensors, fail)
    return SafetensorsHeader(tensors=tensors, metadata=metadata, header_size=8 + n)


def _tensor_info(tname: str, entry: object, fail: _Fail) -> TensorInfo:
    if not isinstance(entry, dict):
        raise fail(f"tensor {tname!r}: entry must be an object with dtype, shape, data_offsets")
    dtype = entry.get("dtype")
    if dtype not in DTYPE_BITS:
        known = ", ".join(DTYPE_BITS)
        raise fail(f"tensor {tname!r}: dtype {dtype!r} is not a safetensors dtype ({known})")
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise fail(f"tensor {tname!r}: shape must be a list of non-negative integers, not {shape}")
    offsets = entry.get("data_offsets")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_count(o) for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise fail(
            f"tensor {tname!r}: data_offsets must be [begin, end] with 0 <= begin <= end, "
            f"not {offsets}"
        )
    bits = DTYPE_BITS[dtype]
    for dim in shape:  # bounded, as the reference reader's overflow check: no huge-int work
        if (bits := bits * dim) >= 1 << 70:
            raise fail(f"tensor {tname!r}: shape {shape} is too large")
    have = offsets[1] - offsets[0]
    if bits % 8 or have != bits // 8:
        needs = f"{bits // 8:,}" if bits % 8 == 0 else f"{bits / 8:,} (not a whole byte count)"
        raise fail(
            f"tensor {tname!r} has {have:,} bytes but shape {shape} of {dtype} needs {needs}"
        )
    return TensorInfo(tname, dtype, tuple(shape), offsets[0], offsets[1])


def _check_coverage(tensors: dict[str, TensorInfo], fail: _Fail) -> None:
    expected, previous = 0, None
    for t in sorted(tensors.values(), key=lambda t: (t.start, t.end)):
        if t.start < expected:
            if previous is None:  # only a negative start, which parsing refuses earlier
                raise fail(f"tensor '{t.name}' starts before the data")
            raise fail(
                f"tensors {previous.name!r} (bytes {previous.start:,}-{previous.end:,}) and "
                f"{t.name!r} (bytes {t.start:,}-{t.end:,}) overlap"
            )
        if t.start > expected:
            after = f"after {previous.name!r}" if previous else "at the start"
            raise fail(
                f"bytes {expected:,}-{t.start:,} of the data section belong to no tensor "
                f"({after}, before {t.name!r})"
            )
        expected, previous = t.end, t
