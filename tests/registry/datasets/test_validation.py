import random
from collections.abc import Iterable

import orjson
import pytest

from registry.datasets.validation import (
    CHAT,
    PROMPT_COMPLETION,
    DatasetValidator,
    LineError,
    ValidationReport,
)


def chat(*turns: tuple[str, str], **extra: object) -> bytes:
    row: dict[str, object] = {"messages": [{"role": r, "content": c} for r, c in turns]}
    row.update(extra)
    return orjson.dumps(row)


def pc(prompt: object, completion: object) -> bytes:
    return orjson.dumps({"prompt": prompt, "completion": completion})


GOOD = chat(("user", "hi"), ("assistant", "hello"))
GOOD2 = chat(("system", "be brief"), ("user", "2+2?"), ("assistant", "4"))


def run(
    data: bytes, chunks: Iterable[int] | None = None, **kwargs: int
) -> tuple[DatasetValidator, bytes]:
    """Feeds `data` in pieces of the given sizes (one piece if None); returns kept bytes."""
    v = DatasetValidator(**kwargs)
    out: list[bytes] = []
    if chunks is None:
        out += v.feed(data)
    else:
        pos = 0
        for size in chunks:
            out += v.feed(data[pos : pos + size])
            pos += size
        assert pos >= len(data)
    out += v.finish()
    return v, b"".join(out)


def only_error(v: DatasetValidator) -> LineError:
    assert v.report.invalid == 1
    assert len(v.report.errors) == 1
    return v.report.errors[0]


def test_valid_chat_file() -> None:
    data = GOOD + b"\n" + GOOD2 + b"\n"
    v, kept = run(data)
    assert v.ok
    assert kept == data
    assert v.report == ValidationReport(format=CHAT, lines=2, rows=2)


def test_valid_prompt_completion_file() -> None:
    data = pc("a", "b") + b"\n" + pc("c", "d") + b"\n"
    v, kept = run(data)
    assert v.ok
    assert kept == data
    assert v.report.format == PROMPT_COMPLETION


def test_kept_rows_are_byte_identical_to_input_lines() -> None:
    lines = [
        b'{ "messages" : [ {"content":"caf\xc3\xa9 \\u00e9", "role":"user"},'
        b' {"role":"assistant","content":"ok","weight":1} ], "meta": {"x": [1, 2.50]} }',
        b'  {"messages":[{"role":"user","content":"\xf0\x9f\x99\x82"},'
        b'{"role":"assistant","content":"x"}]}  ',
    ]
    v = DatasetValidator()
    rows = v.feed(b"\n".join(lines) + b"\n")
    assert rows == [line + b"\n" for line in lines]
    assert v.finish() == []
    assert v.ok


def test_to_dict() -> None:
    v, _ = run(GOOD + b"\n[]\n")
    assert v.report.to_dict() == {
        "format": "chat",
        "lines": 2,
        "rows": 1,
        "duplicates": 0,
        "invalid": 1,
        "blank": 0,
        "errors": [{"line": 2, "reason": "expected a JSON object, got an array"}],
    }


# --- one rule per test -------------------------------------------------------------------


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


def test_invalid_utf8() -> None:
    v, _ = run(GOOD + b'\n{"prompt": "a\xff", "completion": "b"}\n')
    err = only_error(v)
    assert err.line == 2
    assert "not valid UTF-8" in err.reason and "offset 13" in err.reason


def test_byte_order_mark() -> None:
    v, _ = run(b"\xef\xbb\xbf" + GOOD + b"\n")
    assert "byte order mark" in only_error(v).reason


def test_invalid_json() -> None:
    v, _ = run(b'{"prompt": "a", "completion": \n')
    err = only_error(v)
    assert err.line == 1
    assert err.reason.startswith("invalid JSON: ") and "column" in err.reason


@pytest.mark.parametrize(
    ("line", "kind"),
    [(b"[1, 2]", "an array"), (b'"text"', "a string"), (b"3", "a number"), (b"null", "null")],
)
def test_json_that_is_not_an_object(line: bytes, kind: str) -> None:
    v, _ = run(line + b"\n")
    assert only_error(v).reason == f"expected a JSON object, got {kind}"


def test_object_of_neither_format() -> None:
    v, _ = run(b'{"text": "a", "label": 1}\n')
    reason = only_error(v).reason
    assert '"messages"' in reason and "'text', 'label'" in reason


def test_format_is_decided_by_first_valid_row() -> None:
    data = b"\n".join([b"{}", pc("", "b"), GOOD, pc("a", "b"), GOOD2]) + b"\n"
    v, _ = run(data)
    assert v.report.format == CHAT
    assert v.report.invalid == 3
    assert v.report.errors[2] == LineError(
        4,
        "this row is in prompt/completion format, but line 3 set the file's format to chat; "
        "use one format per file",
    )
    assert v.report.rows == 2


def test_format_mismatch_names_prompt_completion() -> None:
    v, _ = run(pc("a", "b") + b"\n" + GOOD + b"\n")
    assert only_error(v).reason.startswith("this row is in chat format, but line 1 set")


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (b'{"messages": "hi"}', '"messages" must be a list of messages, got a string'),
        (b'{"messages": []}', '"messages" is empty; add at least a user and an assistant message'),
        (
            b'{"messages": [{"role": "user", "content": "a"}, 5]}',
            "message 2: expected an object, got a number",
        ),
        (
            chat(("user", "a"), ("tool", "b"), ("assistant", "c")),
            "message 2: role 'tool' is not supported; use system, user or assistant",
        ),
        (
            b'{"messages": [{"role": ["user"], "content": "a"}]}',
            'message 1: role ["user"] is not supported; use system, user or assistant',
        ),
        (
            b'{"messages": [{"content": "a"}]}',
            'message 1: missing "role"; use system, user or assistant',
        ),
        (b'{"messages": [{"role": "user"}]}', 'message 1: missing "content"'),
        (
            b'{"messages": [{"role": "user", "content": "a"},'
            b' {"role": "assistant", "content": null}]}',
            "message 2: content must be a string, got null",
        ),
        (chat(("user", "a"), ("assistant", "")), "message 2: content is empty or only whitespace"),
        (
            chat(("user", " \n\t"), ("assistant", "b")),
            "message 1: content is empty or only whitespace",
        ),
        (
            chat(("system", "a"), ("user", "b")),
            "no assistant message; add the assistant reply the adapter should learn",
        ),
        (
            chat(("user", "a"), ("assistant", "b"), ("user", "c")),
            "the last message (message 3) is from user, not assistant; "
            "end the conversation with the assistant reply to train on",
        ),
    ],
)
def test_chat_rules(row: bytes, reason: str) -> None:
    v, _ = run(row + b"\n")
    assert only_error(v) == LineError(1, reason)
    assert v.report.format is None


def test_chat_allows_unknown_keys() -> None:
    row = (
        b'{"id": 7, "messages": [{"role": "user", "content": "a", "name": "bob"},'
        b' {"role": "assistant", "content": "b", "weight": 0}]}'
    )
    v, _ = run(row + b"\n")
    assert v.ok


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (b'{"prompt": "a"}', 'missing "completion"; prompt/completion rows need both'),
        (b'{"completion": "a"}', 'missing "prompt"; prompt/completion rows need both'),
        (pc(1, "b"), '"prompt" must be a string, got a number'),
        (pc("a", ["b"]), '"completion" must be a string, got an array'),
        (pc("a", "  "), '"completion" is empty or only whitespace'),
        (pc("", "b"), '"prompt" is empty or only whitespace'),
    ],
)
def test_prompt_completion_rules(row: bytes, reason: str) -> None:
    v, _ = run(row + b"\n")
    assert only_error(v) == LineError(1, reason)


def test_blank_lines_are_skipped() -> None:
    v, kept = run(b"\n  \n" + GOOD + b"\r\n\t\r\n\n")
    assert v.ok
    assert kept == GOOD + b"\n"
    assert (v.report.lines, v.report.blank, v.report.rows) == (5, 4, 1)


def test_duplicates_are_counted_and_dropped() -> None:
    other_bytes_same_json = GOOD.replace(b'","', b'", "', 1)
    data = b"\n".join([GOOD, GOOD2, GOOD, other_bytes_same_json, GOOD2, GOOD]) + b"\n"
    v, kept = run(data)
    assert v.ok
    assert (v.report.rows, v.report.duplicates) == (3, 3)
    assert kept == GOOD + b"\n" + GOOD2 + b"\n" + other_bytes_same_json + b"\n"


def test_crlf_line_is_a_duplicate_of_lf_line() -> None:
    v, kept = run(GOOD + b"\r\n" + GOOD + b"\n" + GOOD2 + b"\r\n")
    assert (v.report.rows, v.report.duplicates) == (2, 1)
    assert kept == GOOD + b"\n" + GOOD2 + b"\n"


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


def test_errors_capped_but_invalid_counts_all() -> None:
    data = GOOD + b"\n" + b"[]\n" * 30 + GOOD2 + b"\n"
    v, kept = run(data, max_errors=5)
    assert v.report.invalid == 30
    assert [e.line for e in v.report.errors] == [2, 3, 4, 5, 6]
    assert v.report.rows == 2
    assert kept == GOOD + b"\n"


def test_empty_file() -> None:
    v, kept = run(b"")
    assert not v.ok
    assert kept == b""
    assert v.report.invalid == 0
    assert v.report.errors == [LineError(0, "the file is empty; upload at least one row")]


def test_only_blank_lines() -> None:
    v, _ = run(b"\n \r\n")
    assert not v.ok
    assert v.report.blank == 2
    assert v.report.errors[0].line == 0 and "only blank lines" in v.report.errors[0].reason


def test_no_valid_rows() -> None:
    v, _ = run(b"[]\n")
    assert not v.ok
    assert v.report.rows == 0
    assert v.report.errors == [LineError(1, "expected a JSON object, got an array")]


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


def test_constructor_rejects_bad_limits() -> None:
    with pytest.raises(ValueError):
        DatasetValidator(max_line_bytes=0)
    with pytest.raises(ValueError):
        DatasetValidator(max_errors=0)
