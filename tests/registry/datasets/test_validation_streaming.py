"""The dataset validator as a stream: line and error limits, the end of the input, and
results that do not depend on where the chunk boundaries fall.
"""

import random

import pytest

from registry.datasets.validation import DatasetValidator, LineError
from tests.registry.datasets.test_validation import GOOD, GOOD2, chat, only_error, run

# --- limits ------------------------------------------------------------------------------


def test_line_too_long() -> None:
    long_row = chat(("user", "x" * 200), ("assistant", "y"))
    v, kept = run(GOOD + b"\n" + long_row + b"\n" + GOOD2 + b"\n", max_line_bytes=150)
    err = only_error(v)
    assert err.line == 2
    assert f"{len(long_row)} bytes" in err.reason and "150-byte limit" in err.reason
    assert v.report.rows == 2 and v.report.lines == 3
    assert not v.ok
    assert kept == GOOD + b"\n"  # rows after the first invalid line are not returned


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_line_too_long_streamed_is_not_buffered(chunk: int) -> None:
    long_row = chat(("user", "x" * 5000), ("assistant", "y"))
    data = GOOD + b"\n" + long_row + b"\r\n" + GOOD2
    v = DatasetValidator(max_line_bytes=150)
    for i in range(0, len(data), chunk):
        v.feed(data[i : i + chunk])
        assert v._pending_len <= 151  # never more than the limit (+ a possible "\r")
    v.finish()
    err = only_error(v)
    assert err == LineError(
        2, f"line is {len(long_row):,} bytes, over the 150-byte limit; shorten or split this row"
    )
    assert v.report.rows == 2


def test_line_at_the_limit_is_accepted_with_crlf() -> None:
    v, kept = run(GOOD + b"\r\n", chunks=[len(GOOD) + 1, 1], max_line_bytes=len(GOOD))
    assert v.ok
    assert kept == GOOD + b"\n"


def test_errors_capped_but_invalid_counts_all() -> None:
    data = GOOD + b"\n" + b"[]\n" * 30 + GOOD2 + b"\n"
    v, kept = run(data, max_errors=5)
    assert v.report.invalid == 30
    assert [e.line for e in v.report.errors] == [2, 3, 4, 5, 6]
    assert v.report.rows == 2
    assert kept == GOOD + b"\n"


def test_constructor_rejects_bad_limits() -> None:
    with pytest.raises(ValueError):
        DatasetValidator(max_line_bytes=0)
    with pytest.raises(ValueError):
        DatasetValidator(max_errors=0)


# --- end of input ------------------------------------------------------------------------


def test_no_trailing_newline() -> None:
    v, kept = run(GOOD + b"\n" + GOOD2)
    assert v.ok
    assert v.report.lines == 2
    assert kept == GOOD + b"\n" + GOOD2 + b"\n"


def test_no_trailing_newline_with_cr() -> None:
    v, kept = run(GOOD + b"\r")
    assert v.ok
    assert kept == GOOD + b"\n"


def test_last_row_only_arrives_on_finish() -> None:
    v = DatasetValidator()
    assert v.feed(GOOD) == []
    assert v.finish() == [GOOD + b"\n"]


def test_ok_needs_finish_and_finish_is_once() -> None:
    v = DatasetValidator()
    v.feed(GOOD + b"\n")
    assert not v.ok
    v.finish()
    assert v.ok
    with pytest.raises(RuntimeError):
        v.finish()
    with pytest.raises(RuntimeError):
        v.feed(GOOD)


# --- chunk boundaries --------------------------------------------------------------------


def mixed_file() -> bytes:
    rows = [
        GOOD,
        chat(("user", "caf\u00e9 \u65e5\u672c \U0001f642"), ("assistant", "\u00fc\u00df")),
        b"",
        GOOD2 + b"\r",
        GOOD,
        b'{"messages": [{"role": "tool", "content": "x"}]}',
        chat(("user", "x" * 300), ("assistant", "y")),
        b"not json",
        b'{"prompt": "\xff", "completion": "b"}',
        chat(("user", "\u00e9\u00e9"), ("assistant", "\u20ac")) + b"\r",
        GOOD2,
    ]
    return b"\n".join(rows)  # no trailing newline


def fingerprint(v: DatasetValidator, kept: bytes) -> tuple[object, ...]:
    return (v.ok, kept, v.report.to_dict())


def test_mixed_file_reference() -> None:
    v, kept = run(mixed_file(), max_line_bytes=200)
    rep = v.report
    assert (rep.lines, rep.rows, rep.duplicates, rep.invalid, rep.blank) == (11, 4, 2, 4, 1)
    assert [e.line for e in rep.errors] == [6, 7, 8, 9]
    assert kept.count(b"\n") == 3  # rows before the first invalid line


def test_multibyte_char_split_across_chunks() -> None:
    data = chat(("user", "\u00e9"), ("assistant", "\U0001f642")) + b"\n"
    split_at = data.index(b"\xf0\x9f") + 2  # inside the 4-byte emoji
    v, kept = run(data, chunks=[split_at, len(data) - split_at])
    assert v.ok
    assert kept == data


@pytest.mark.parametrize("data", [GOOD + b"\n" + GOOD2 + b"\r\n", None])
def test_one_byte_at_a_time_matches_one_chunk(data: bytes | None) -> None:
    data = mixed_file() if data is None else data
    whole = fingerprint(*run(data, max_line_bytes=200))
    assert fingerprint(*run(data, chunks=[1] * len(data), max_line_bytes=200)) == whole


@pytest.mark.parametrize("seed", range(20))
def test_random_chunks_match_one_chunk(seed: int) -> None:
    rng = random.Random(seed)
    data = mixed_file()
    whole = fingerprint(*run(data, max_line_bytes=200))
    sizes: list[int] = []
    while sum(sizes) < len(data):
        sizes.append(rng.choice([0, 1, 2, 3, rng.randint(1, 50), rng.randint(1, 400)]))
    assert fingerprint(*run(data, chunks=sizes, max_line_bytes=200)) == whole


def test_valid_file_in_random_chunks() -> None:
    rng = random.Random(1)
    data = b"".join(
        chat(("user", f"q{i} \u00e9\u4e2d"), ("assistant", f"a{i} \U0001f642")) + b"\r\n"
        for i in range(200)
    )
    sizes = [rng.randint(1, 97) for _ in range(len(data))]
    v, kept = run(data, chunks=sizes)
    assert v.ok
    assert v.report.rows == 200
    assert kept == data.replace(b"\r\n", b"\n")
