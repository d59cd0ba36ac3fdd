"""Streaming multipart/form-data: file parts flow to sinks as they arrive, never spooled whole.

Starlette's form parser spools files to temporary files first; an upload here is validated,
hashed and written to the object store while it streams, so memory stays flat and a bad or
oversized file is refused before it is all read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.concurrency import run_in_threadpool

from registry.errors import PayloadTooLarge, Unprocessable

BATCH_BYTES = 1 << 20  # hand file data to sinks (in a worker thread) in ~1 MiB batches


class FileSink(Protocol):
    def begin(self, filename: str, content_type: str) -> None: ...
    def feed(self, data: bytes) -> None: ...
    def end(self) -> None: ...


@dataclass
class FormResult:
    fields: dict[str, str]
    files: list[str]  # field names of the file parts received, in order


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    content_type: str = ""
    disposition: bytes = b""
    text: bytearray = field(default_factory=bytearray)


# A queued sink operation: ("begin", filename, content_type) | ("data", bytes) | ("end",)
_Op = tuple[str, tuple[object, ...]]


class _FormParser:
    """python-multipart callbacks. They run on the event loop and only queue sink work."""

    def __init__(
        self, sinks: dict[str, Callable[[], FileSink]], max_field_bytes: int, max_fields: int
    ) -> None:
        self.sinks, self.max_field_bytes, self.max_fields = sinks, max_field_bytes, max_fields
        self.result = FormResult(fields={}, files=[])
        self.active: dict[str, FileSink] = {}
        self.pending: list[_Op] = []
        self.part = _Part()
        self._hname = self._hvalue = b""

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def on_header_end(self) -> None:
        name = self._hname.lower()
        if name == b"content-disposition":
            self.part.disposition = self._hvalue
        elif name == b"content-type":
            self.part.content_type = self._hvalue.decode("latin-1")
        self._hname = self._hvalue = b""

    def on_headers_finished(self) -> None:
        part = self.part
        _, opts = parse_options_header(part.disposition)
        if b"name" not in opts:
            raise Unprocessable("a form part has no name in its Content-Disposition header")
        part.name = opts[b"name"].decode("utf-8", "replace")
        if b"filename" not in opts:
            if len(self.result.fields) >= self.max_fields:
                raise Unprocessable(f"too many form fields (at most {self.max_fields})")
            return
        part.filename = opts[b"filename"].decode("utf-8", "replace")
        if part.name not in self.sinks:
            expected = ", ".join(sorted(self.sinks)) or "none"
            raise Unprocessable(f"unexpected file field '{part.name}'; expected: {expected}")
        if part.name in self.active:
            raise Unprocessable(f"file field '{part.name}' was sent twice")
        self.active[part.name] = self.sinks[part.name]()
        self.result.files.append(part.name)
        self.pending.append((part.name, ("begin", part.filename, part.content_type)))

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.part
        if part.filename is not None:
            self.pending.append((part.name, ("data", data[start:end])))
        elif len(part.text) + (end - start) > self.max_field_bytes:
            raise Unprocessable(f"form field '{part.name}' is over {self.max_field_bytes} bytes")
        else:
            part.text.extend(data[start:end])

    def on_part_end(self) -> None:
        part = self.part
        if part.filename is not None:
            self.pending.append((part.name, ("end",)))
            return
        try:
            self.result.fields[part.name] = part.text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Unprocessable(f"form field '{part.name}' is not valid UTF-8") from exc

    def take_pending(self) -> list[_Op]:
        ops, self.pending = self.pending, []
        return ops

    def apply(self, ops: list[_Op]) -> None:
        """Run queued sink work in order, joining consecutive data into one feed call."""
        batch: list[bytes] = []
        batch_name = ""
        for name, op in ops + [("", ("flush",))]:
            if op[0] == "data" and name == batch_name:
                batch.append(op[1])  # type: ignore[arg-type]
                continue
            if batch:
                self.active[batch_name].feed(b"".join(batch))
                batch = []
            if op[0] == "data":
                batch_name, batch = name, [op[1]]  # type: ignore[list-item]
            elif op[0] == "begin":
                self.active[name].begin(str(op[1]), str(op[2]))
            elif op[0] == "end":
                self.active[name].end()


async def read_streaming_form(
    content_type: str | None,
    body: AsyncIterator[bytes],
    *,
    sinks: dict[str, Callable[[], FileSink]],
    max_body_bytes: int,
    max_field_bytes: int = 64 << 10,
    max_fields: int = 20,
) -> FormResult:
    """Parse a multipart body. `sinks` maps a file field name to a sink factory."""
    mime, params = parse_options_header(content_type or "")
    if mime != b"multipart/form-data" or b"boundary" not in params:
        files = ", ".join(f"'{name}'" for name in sorted(sinks))
        raise Unprocessable(f"send the upload as multipart/form-data with file field {files}")
    form = _FormParser(sinks, max_field_bytes, max_fields)
    parser = MultipartParser(params[b"boundary"], form.callbacks())  # type: ignore[arg-type]
    received = buffered = 0
    try:
        async for chunk in body:
            received += len(chunk)
            if received > max_body_bytes:
                raise PayloadTooLarge(f"upload is over the {max_body_bytes:,}-byte limit")
            parser.write(chunk)
            buffered += len(chunk)
            if buffered >= BATCH_BYTES:
                buffered = 0
                await run_in_threadpool(form.apply, form.take_pending())
        parser.finalize()
        if parser.state != MultipartState.END:  # python-multipart's finalize does not check
            raise Unprocessable(
                "the multipart body ended before its closing boundary: the upload is "
                "incomplete (was the connection cut?); send it again"
            )
    except FormParserError as exc:
        raise Unprocessable(f"malformed multipart body: {exc}") from exc
    await run_in_threadpool(form.apply, form.take_pending())
    return form.result
