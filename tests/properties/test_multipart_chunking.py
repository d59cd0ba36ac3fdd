"""Streaming multipart parsing (registry/uploads.py): one result per body, whatever the chunking;
a malformed or truncated body is a 4xx error, never a partial upload or a 500."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from registry.errors import LoraplexError
from registry.uploads import FormResult, read_streaming_form

SINKS = ("file", "weights")


@dataclass
class RecordingSink:
    events: list[tuple[str, ...]] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)

    def begin(self, filename: str, content_type: str) -> None:
        self.events.append(("begin", filename, content_type))

    def feed(self, data: bytes) -> None:
        self.data += data

    def end(self) -> None:
        self.events.append(("end", bytes(self.data).hex()))


Outcome = tuple[dict[str, str], list[str], dict[str, tuple[list[tuple[str, ...]], bytes]]] | int


def parse(content_type: str, chunks: list[bytes], max_body_bytes: int = 1 << 20) -> Outcome:
    """The parsed form and what each sink saw, or the HTTP status of the error."""
    sinks: dict[str, RecordingSink] = {}

    def factory(name: str) -> RecordingSink:
        return sinks.setdefault(name, RecordingSink())

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def go() -> FormResult:
        return await read_streaming_form(
            content_type,
            body(),
            sinks={name: (lambda n=name: factory(n)) for name in SINKS},  # type: ignore[misc]
            max_body_bytes=max_body_bytes,
            max_field_bytes=64,
            max_fields=3,
        )

    try:
        result = asyncio.run(go())
    except LoraplexError as exc:
        assert 400 <= exc.status_code < 500, exc
        return exc.status_code
    seen = {name: (sink.events, bytes(sink.data)) for name, sink in sinks.items()}
    return result.fields, result.files, seen


_TOKEN = st.text("abcXYZ019-_'", min_size=1, max_size=20)
# Content that looks like the syntax: CRLFs, dashes, partial boundaries.
_CONTENT = st.lists(
    st.sampled_from([b"\r\n", b"--", b"\r\n--", b"\r", b"\n", b"x", b"\xff", b"{}", b" "])
    | st.binary(max_size=8),
    max_size=12,
).map(b"".join)


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    content: bytes


_PART = st.builds(
    Part,
    st.sampled_from(["name", "file", "weights", "other"]),
    st.none() | st.sampled_from(["d.jsonl", "w.safetensors", "é.txt"]),
    _CONTENT,
)


def encode(boundary: str, parts: list[Part]) -> bytes:
    out = bytearray()
    for part in parts:
        disposition = f'form-data; name="{part.name}"'
        if part.filename is not None:
            disposition += f'; filename="{part.filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if part.filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + part.content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0, *sorted({min(c, len(data)) for c in cuts}), len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def content_type(boundary: str) -> str:
    return f'multipart/form-data; boundary="{boundary}"'


_BOUNDARY = _TOKEN.map(lambda t: "b" + t)
_CUTS = st.lists(st.integers(0, 400), max_size=25)


@settings(max_examples=400, deadline=None)
@given(boundary=_BOUNDARY, parts=st.lists(_PART, max_size=4), cuts=_CUTS)
def test_any_chunking_gives_the_same_form(
    boundary: str, parts: list[Part], cuts: list[int]
) -> None:
    body = encode(boundary, parts)
    whole = parse(content_type(boundary), [body])
    assert parse(content_type(boundary), chunked(body, cuts)) == whole
    assert parse(content_type(boundary), [body[i : i + 1] for i in range(len(body))]) == whole


@settings(max_examples=300, deadline=None)
@given(boundary=_BOUNDARY, parts=st.lists(_PART, max_size=4))
def test_a_well_formed_body_parses_to_what_was_sent(boundary: str, parts: list[Part]) -> None:
    """Unless it breaks a rule (a file field not expected, sent twice, a field too long...)."""
    result = parse(content_type(boundary), [encode(boundary, parts)])
    if isinstance(result, int):
        return
    fields, files, seen = result
    sent_files = [p for p in parts if p.filename is not None]
    assert files == [p.name for p in sent_files]
    for part in sent_files:
        assert seen[part.name] == (
            [("begin", part.filename, "application/octet-stream"), ("end", part.content.hex())],
            part.content,
        )
    assert fields == {p.name: p.content.decode() for p in parts if p.filename is None}


@settings(max_examples=300, deadline=None)
@given(boundary=_BOUNDARY, parts=st.lists(_PART, min_size=1, max_size=3), data=st.data())
def test_a_truncated_body_is_refused(boundary: str, parts: list[Part], data: st.DataObject) -> None:
    """A body cut short (a client that stopped sending) must not pass as a complete upload."""
    body = encode(boundary, parts)
    if isinstance(parse(content_type(boundary), [body]), int):
        return  # refused whole already
    cut = data.draw(st.integers(0, len(body) - len(b"--\r\n") - 1), label="cut")
    assert parse(content_type(boundary), [body[:cut]]) == 422


@settings(max_examples=400, deadline=None)
@given(
    boundary=_BOUNDARY,
    parts=st.lists(_PART, max_size=3),
    edits=st.lists(st.tuples(st.integers(0, 1000), st.binary(max_size=4)), min_size=1, max_size=3),
    cuts=_CUTS,
)
def test_a_mangled_body_is_a_4xx_or_a_form(
    boundary: str, parts: list[Part], edits: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    body = bytearray(encode(boundary, parts))
    for pos, new in edits:
        at = pos % (len(body) + 1)
        body[at : at + len(new)] = new
    whole = parse(content_type(boundary), [bytes(body)])  # a 4xx is returned, anything else raises
    assert parse(content_type(boundary), chunked(bytes(body), cuts)) == whole


@settings(max_examples=100, deadline=None)
@given(boundary=_BOUNDARY, parts=st.lists(_PART, min_size=1, max_size=3), cuts=_CUTS)
def test_the_body_limit_holds_for_any_chunking(
    boundary: str, parts: list[Part], cuts: list[int]
) -> None:
    body = encode(boundary, parts)
    limited = parse(content_type(boundary), chunked(body, cuts), max_body_bytes=len(body) - 1)
    # 413, unless the body breaks a rule (a 4xx) before the limit is reached
    assert (
        limited == 413
        if not isinstance(parse(content_type(boundary), [body]), int)
        else 400 <= limited < 500
    )


@given(
    header=st.sampled_from(
        [
            "",
            "text/plain",
            "multipart/form-data",
            "application/json",
            "multipart/form-data; boundary=",
            "multipart/mixed; boundary=x",
        ]
    )
)
def test_not_multipart_is_422(header: str) -> None:
    assert parse(header, [b"--x\r\n"]) == 422


def test_regression_a_body_cut_inside_a_file_is_not_a_complete_upload() -> None:
    """Found by test_a_truncated_body_is_refused: the parser's finalize accepted a body with no
    closing boundary, handing the route a form whose file had no end."""
    body = encode("bX", [Part("file", "d.jsonl", b'{"prompt": "a", "completion": "b"}\n' * 4)])
    assert parse(content_type("bX"), [body[: len(body) // 2]]) == 422
    assert parse(content_type("bX"), [body[:-4]]) == 422  # "--bX" without its final "--"
    assert isinstance(parse(content_type("bX"), [body]), tuple)
