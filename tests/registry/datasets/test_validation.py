"""The dataset validator's format rules: what makes a row valid chat or prompt/completion,
the per-line errors it reports, blank lines, duplicates and empty files.

Streaming, chunk boundaries and limits are in test_validation_streaming.py, which imports the
helpers defined here.
"""

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
        "tool_rows": 0,
        "errors": [{"line": 2, "reason": "expected a JSON object, got an array"}],
    }


# --- one rule per test -------------------------------------------------------------------


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
            chat(("user", "a"), ("critic", "b"), ("assistant", "c")),
            "message 2: role 'critic' is not supported; "
            "use system, developer, user, assistant or tool",
        ),
        (
            b'{"messages": [{"role": ["user"], "content": "a"}]}',
            'message 1: role ["user"] is not supported; '
            "use system, developer, user, assistant or tool",
        ),
        (
            b'{"messages": [{"content": "a"}]}',
            'message 1: missing "role"; use system, developer, user, assistant or tool',
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
        b' {"role": "assistant", "content": "b", "weight": 1}]}'
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
