from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from collections.abc import Iterator

import pytest

from registry.adapters.safetensors import (
    HeaderReader,
    SafetensorsError,
    SafetensorsHeader,
    TensorInfo,
    looks_like_pickle,
    parse_header,
    read_header,
)
from tests.registry.adapters.fakes import raw_file, safetensors_bytes

SPEC = {
    "a": ("F32", [2, 3]),
    "b": ("BF16", [4]),
    "empty": ("F16", [0, 5]),
    "scalar": ("I64", []),
}


def entry(dtype: str, shape: object, begin: int, end: int) -> dict[str, object]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def test_parses_a_valid_file() -> None:
    data = safetensors_bytes(SPEC, metadata={"format": "pt"})
    header = parse_header(data)
    assert header.metadata == {"format": "pt"}
    assert header.tensors["a"] == TensorInfo("a", "F32", (2, 3), 0, 24)
    assert header.tensors["b"] == TensorInfo("b", "BF16", (4,), 24, 32)
    assert header.tensors["empty"].shape == (0, 5)
    assert header.tensors["scalar"] == TensorInfo("scalar", "I64", (), 32, 40)
    assert header.data_size == 40
    assert header.file_size == len(data) == header.header_size + 40
    assert header.header_size % 8 == 0  # padded with spaces, as the reference writer does


def test_empty_file_with_no_tensors() -> None:
    header = parse_header(raw_file({}))
    assert header.tensors == {} and header.metadata == {} and header.data_size == 0


def test_feeding_one_byte_at_a_time_gives_the_same_header() -> None:
    data = safetensors_bytes(SPEC, metadata={"format": "pt"})
    header_size = parse_header(data).header_size
    reader = HeaderReader()
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        # The header is there as soon as its bytes are, before the data section is in.
        assert (reader.header is not None) == (i + 1 >= header_size)
    assert reader.finish() == parse_header(data)
    assert reader.total_bytes == len(data)


def test_header_is_ready_once_its_bytes_are_in() -> None:
    data = safetensors_bytes(SPEC)
    n = struct.unpack("<Q", data[:8])[0]
    reader = HeaderReader()
    reader.feed(data[: 8 + n - 1])
    assert reader.header is None
    reader.feed(data[8 + n - 1 : 8 + n])
    assert isinstance(reader.header, SafetensorsHeader)
    assert reader._buf == bytearray()  # nothing is kept once the header is parsed


def test_read_header_stops_reading_after_the_header() -> None:
    data = safetensors_bytes(SPEC) + bytes(10_000)  # trailing bytes: read_header never sees them
    consumed: list[int] = []
    closed = []

    def chunks() -> Iterator[bytes]:
        try:
            for i in range(0, len(data), 16):
                consumed.append(i)
                yield data[i : i + 16]
        finally:
            closed.append(True)

    header = read_header(chunks())
    assert set(header.tensors) == set(SPEC)
    assert len(consumed) * 16 < header.header_size + 16
    assert closed == [True]


def test_read_header_does_not_check_the_total_size() -> None:
    data = safetensors_bytes(SPEC)
    header = read_header([data[: parse_header(data).header_size]])
    assert header.data_size == 40


def test_read_header_of_a_stream_that_ends_early() -> None:
    data = safetensors_bytes(SPEC)
    with pytest.raises(SafetensorsError, match="is larger than the file"):
        read_header([data[:20]], name="x.safetensors")


def test_truncated_data() -> None:
    data = safetensors_bytes(SPEC)
    with pytest.raises(SafetensorsError, match=r"describes .*truncated"):
        parse_header(data[:-1])


def test_extra_bytes_fail_as_soon_as_they_arrive() -> None:
    data = safetensors_bytes(SPEC)
    reader = HeaderReader()
    reader.feed(data)
    with pytest.raises(SafetensorsError, match="longer than its header describes"):
        reader.feed(b"\0")
    with pytest.raises(SafetensorsError, match="longer"):  # the error sticks
        reader.finish()


@pytest.mark.parametrize("size", [0, 3, 7])
def test_too_short_for_a_header_length(size: int) -> None:
    with pytest.raises(SafetensorsError, match="too short"):
        parse_header(b"\0" * size)


def test_header_length_larger_than_the_file() -> None:
    data = struct.pack("<Q", 9_999_999_999) + b"{}"
    with pytest.raises(SafetensorsError) as err:
        parse_header(data, name="adapter_model.safetensors")
    assert str(err.value) == (
        "adapter_model.safetensors: header length 9,999,999,999 is larger than the file (10 bytes)"
    )


def test_header_length_over_the_limit_fails_on_the_first_8_bytes() -> None:
    reader = HeaderReader(max_header_bytes=100)
    with pytest.raises(SafetensorsError, match="header length 1,000 is larger than the limit"):
        reader.feed(struct.pack("<Q", 1000))


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"{not json}", "not valid JSON"),
        (b'{"a": 1', "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"[]", "must be a JSON object"),
        (b' {"a": 1}', "must be a JSON object"),
        (b"", "must be a JSON object"),
        (b'{"__metadata__": {"k": "v"}, "__metadata__": {}}', "duplicate key '__metadata__'"),
        (b'{"__metadata__": {"k": 1}}', "__metadata__ must be a JSON object mapping strings"),
        (b'{"__metadata__": []}', "__metadata__ must"),
        (b'{"t": []}', "tensor 't': entry must be an object"),
    ],
)
def test_malformed_header(header: bytes, message: str) -> None:
    with pytest.raises(SafetensorsError, match=message):
        parse_header(raw_file(header))


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (entry("F128", [4], 0, 16), "dtype 'F128' is not a safetensors dtype"),
        ({"shape": [4], "data_offsets": [0, 16]}, "dtype None"),
        (entry("F32", [-4], 0, 16), "shape must be a list of non-negative integers"),
        (entry("F32", [True], 0, 4), "shape must be a list"),
        (entry("F32", [2.0], 0, 8), "shape must be a list"),
        (entry("F32", "4", 0, 16), "shape must be a list"),
        ({"dtype": "F32", "shape": [4], "data_offsets": [0]}, "data_offsets must be"),
        (entry("F32", [4], 16, 0), "data_offsets must be"),
        (entry("F32", [4], -1, 15), "data_offsets must be"),
        (
            entry("F32", [2, 2], 0, 12),
            r"tensor 'x' has 12 bytes but shape \[2, 2\] of F32 needs 16",
        ),
        (entry("F4", [3], 0, 1), "not a whole byte count"),
        (entry("U8", [10**18, 10**18, 0], 0, 0), "is too large"),
    ],
)
def test_invalid_tensor_entry(tensor: dict[str, object], message: str) -> None:
    with pytest.raises(SafetensorsError, match=message):
        parse_header(raw_file({"x": tensor}, 16))


def test_sub_byte_dtype() -> None:
    assert parse_header(raw_file({"x": entry("F4", [4], 0, 2)}, 2)).tensors["x"].end == 2


def test_overlapping_offsets() -> None:
    header = {"a": entry("F32", [4], 0, 16), "b": entry("F32", [2], 8, 16)}
    with pytest.raises(SafetensorsError, match=r"tensors 'a' \(bytes 0-16\) and 'b' .* overlap"):
        parse_header(raw_file(header, 16))


def test_a_hole_between_tensors() -> None:
    header = {"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 12, 20)}
    with pytest.raises(SafetensorsError, match=r"bytes 8-12 .* belong to no tensor .*'a'.*'b'"):
        parse_header(raw_file(header, 20))


def test_a_hole_at_the_start() -> None:
    with pytest.raises(SafetensorsError, match=r"bytes 0-4 .*at the start"):
        parse_header(raw_file({"a": entry("F32", [2], 4, 12)}, 12))


def test_offsets_in_any_order_are_fine() -> None:
    header = {
        "b": entry("F32", [2], 8, 16),
        "a": entry("F32", [2], 0, 8),
        "z": entry("U8", [0], 8, 8),
    }
    assert parse_header(raw_file(header, 16)).data_size == 16


def test_unknown_fields_in_an_entry_are_ignored() -> None:
    header = {"a": {**entry("F32", [2], 0, 8), "extra": 1}}
    assert parse_header(raw_file(header, 8)).tensors["a"].shape == (2,)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickles_are_recognised(protocol: int) -> None:
    data = pickle.dumps({"weight": [1.0, 2.0]}, protocol=protocol)
    assert looks_like_pickle(data)
    assert looks_like_pickle(data[:8])  # the first 8 bytes are enough
    big = pickle.dumps({"weight": list(range(5000))}, protocol=protocol)
    assert looks_like_pickle(big[:8])


def test_legacy_torch_save_is_recognised() -> None:
    # torch.save(..., _use_new_zipfile_serialization=False): protocol 2, then a magic number.
    assert looks_like_pickle(b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19")


def test_zip_archives_are_recognised() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # torch.save writes a zip of pickles
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    assert looks_like_pickle(buf.getvalue())
    assert looks_like_pickle(b"PK\x03\x04")


def test_safetensors_and_other_bytes_are_not_pickles() -> None:
    assert not looks_like_pickle(safetensors_bytes(SPEC))
    # A header of 640 bytes starts with 0x80 0x02, like a protocol-2 pickle.
    overhead = len(json.dumps({"__metadata__": {"pad": ""}}))
    header = raw_file({"__metadata__": {"pad": "x" * (640 - overhead)}})
    assert header[:2] == b"\x80\x02" and parse_header(header).header_size == 648
    assert not looks_like_pickle(header) and not looks_like_pickle(header[:8])
    assert looks_like_pickle(header[:8] + b"x")  # a 640-byte length, but no JSON after it
    assert not looks_like_pickle(b"")
    assert not looks_like_pickle(b"\x80\x01abc")
    assert not looks_like_pickle(b'{"a": 1}')


def test_default_limit_is_what_a_lora_adapter_needs() -> None:
    """Refused on the first 8 bytes, before any parsing: the old limit was 100 MiB."""
    from registry.adapters.safetensors import ADAPTER_MAX_HEADER_BYTES

    modules = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    header, offset = {}, 0
    for layer in range(80):  # rank 64 on all 7 projections of an 80-layer model
        for module in modules:
            for part, shape in (("A", [64, 28672]), ("B", [28672, 64])):
                size = 2 * shape[0] * shape[1]
                name = f"base_model.model.model.layers.{layer}.mlp.{module}.lora_{part}.weight"
                header[name] = entry("BF16", shape, offset, offset + size)
                offset += size
    assert len(header) == 1120
    assert len(json.dumps(header)) * 4 < ADAPTER_MAX_HEADER_BYTES

    reader = HeaderReader()
    with pytest.raises(SafetensorsError, match="larger than the limit of 1,048,576 bytes"):
        reader.feed(struct.pack("<Q", ADAPTER_MAX_HEADER_BYTES + 1))
    with pytest.raises(SafetensorsError, match="larger than the limit"):
        read_header([struct.pack("<Q", 14_600_000) + b"{"])
