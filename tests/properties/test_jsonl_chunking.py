"""The streaming JSONL validator gives one answer per file, however the upload is chunked."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from registry.datasets.validation import DatasetValidator

# Lines chosen to reach every branch: kept rows, duplicates, both formats (so format clashes),
# invalid JSON, non-objects, bad UTF-8, a BOM, blank lines, and lines near the length limit.
_LINES = st.one_of(
    st.builds(
        lambda p, c: f'{{"prompt": "{p}", "completion": "{c}"}}'.encode(),
        st.sampled_from(["a", "b", "2+2?"]),
        st.sampled_from(["x", "4"]),
    ),
    st.just(
        b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}'
    ),
    st.sampled_from(
        [
            b"",
            b"  ",
            b"\t",
            b"{",
            b"[1]",
            b"null",
            b'{"x": 1}',
            b"\xef\xbb\xbf{}",
            b'{"prompt": "\xff"}',
            b'{"prompt": 1, "completion": "x"}',
            "é".encode(),
        ]
    ),
    st.binary(max_size=80),
)
_ENDINGS = st.sampled_from([b"\n", b"\r\n", b"\r", b""])
MAX_LINE = 48  # small, so over-long lines (and their "\r\n" edge) come up often


@st.composite
def jsonl_files(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.tuples(_LINES, _ENDINGS), max_size=12))
    return b"".join(line + (end or b"\n") for line, end in lines[:-1]) + b"".join(
        line + end for line, end in lines[-1:]
    )


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def run(chunks: list[bytes]) -> tuple[dict[str, object], bytes, bool]:
    validator = DatasetValidator(max_line_bytes=MAX_LINE, max_errors=5)
    rows = [row for chunk in chunks for row in validator.feed(chunk)]
    rows += validator.finish()
    return validator.report.to_dict(), b"".join(rows), validator.ok


@settings(max_examples=400, deadline=None)
@given(data=jsonl_files(), cuts=st.lists(st.integers(min_value=0, max_value=1200), max_size=20))
def test_any_chunking_gives_the_same_report_rows_and_digest(data: bytes, cuts: list[int]) -> None:
    whole_report, whole_rows, whole_ok = run([data])
    report, rows, ok = run(chunked(data, cuts))
    assert report == whole_report
    assert hashlib.sha256(rows).hexdigest() == hashlib.sha256(whole_rows).hexdigest()
    assert ok == whole_ok


@settings(max_examples=150, deadline=None)
@given(data=jsonl_files())
def test_byte_at_a_time_equals_one_chunk(data: bytes) -> None:
    assert run([data[i : i + 1] for i in range(len(data))]) == run([data])


@settings(max_examples=200, deadline=None)
@given(data=jsonl_files())
def test_report_counts_add_up(data: bytes) -> None:
    report, rows, _ = run([data])
    counted = report["rows"] + report["duplicates"] + report["invalid"] + report["blank"]
    assert counted == report["lines"]
    assert rows.count(b"\n") <= report["rows"]
