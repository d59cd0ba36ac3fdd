"""Forwarding to the engine: bodies as they are, streams event by event.

For streams the gateway asks the engine for a final usage event (`stream_options.include_usage`)
so every request's tokens are recorded; when the caller did not ask for it, that one event is
taken out again, so the caller receives exactly the stream it would have received directly.

A request whose connection failed before the response head arrived (refused, or closed/reset
before any status line: a pooled keep-alive connection the engine had closed, or an engine that
died before answering) has given the caller nothing yet, so it is sent once more: by
`EngineClient` (one engine) on a fresh connection, by the engine pool (engines.py) to another
engine when there is one. Nothing else is replayed: not a timeout, not a response cut after its
head (the engine may have started generating; the caller may have received part of a stream).
A stream cut after its head is logged and counted per engine, and recorded as a 502.

Tool calls are counted for usage on the way: from a whole answer's `message.tool_calls`, and in
a stream from the distinct (choice, call) `index` pairs of `delta.tool_calls` (only events that
name `"tool_calls"` are parsed). Bodies and events are passed on unchanged.

A request chosen for a full trace carries an `Answer` (`Outcome.answer`): the whole answer's
first choice is kept, and a stream's events are all parsed to assemble it as they pass.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import structlog

from serving.gateway import metrics
from serving.gateway.answers import Answer
from serving.gateway.upstream import Response, Upstream

log = structlog.get_logger(__name__)

# Raised by `send` before a response head: the engine cannot have started on the request.
NOT_STARTED = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
# (path, body, request_id, out) -> the engine's response, head read, body not yet
Send = Callable[[str, dict[str, Any], str, "Outcome"], Awaitable[Response]]


@dataclass
class Outcome:
    status: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: int = 0
    first_byte_s: float | None = None
    engine_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # (choice index, call index) of each tool call seen in a stream's deltas
    call_keys: set[tuple[int, int]] = field(default_factory=set)
    answer: Answer | None = None  # set when the request is captured in full
    engine: str = ""  # host:port of the engine that answered (pool)

    def take_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.completion_tokens = int(usage.get("completion_tokens") or 0)

    def take_answer(self, doc: Any) -> None:
        """Usage and tool calls (summed over choices) of a whole answer."""
        if not isinstance(doc, dict):
            return
        self.take_usage(doc.get("usage"))
        if self.answer is not None:
            self.answer.take_whole(doc)
        for choice in _dicts(doc.get("choices")):
            message = choice.get("message")
            if isinstance(message, dict):
                self.tool_calls += len(_dicts(message.get("tool_calls")))

    def take_deltas(self, chunk: dict[str, Any]) -> None:
        """Tool calls of one stream chunk: a call is new when its (choice, index) pair is."""
        for choice in _dicts(chunk.get("choices")):
            delta = choice.get("delta")
            calls = _dicts(delta.get("tool_calls")) if isinstance(delta, dict) else []
            for call in calls:
                self.call_keys.add((_index(choice), _index(call)))
        self.tool_calls = len(self.call_keys)


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _index(obj: dict[str, Any]) -> int:
    value = obj.get("index")
    return value if isinstance(value, int) else 0


def engine_error_message(content: bytes) -> str:
    try:
        err = orjson.loads(content).get("error")
        return str(err.get("message") if isinstance(err, dict) else err)
    except (orjson.JSONDecodeError, AttributeError):
        return content[:500].decode(errors="replace")


class EngineClient:
    """One engine's connections: the forward's keep-alive pool (upstream.py; a fresh connection
    for the retry), and httpx for the health and load polls."""

    def __init__(self, base_url: str, api_key: str, timeout: float) -> None:
        auth = {"Authorization": f"Bearer {api_key}"}
        self.http = httpx.AsyncClient(
            base_url=base_url,
            headers=auth,
            timeout=httpx.Timeout(timeout, connect=5.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=8),
        )
        self.upstream = Upstream(base_url, {**auth, "content-type": "application/json"}, timeout)

    async def start(self) -> None:
        """Background work (none for one engine)."""

    async def close(self) -> None:
        await self.http.aclose()
        await self.upstream.close()

    async def post(
        self, path: str, body: dict[str, Any], request_id: str, *, fresh: bool = False
    ) -> Response:
        """POSTs `body` once and returns the response once its head arrived (body not read);
        `fresh`: on a new connection, closed after its response."""
        headers = {"x-request-id": request_id}
        return await self.upstream.post(path, orjson.dumps(body), headers, fresh=fresh)

    async def _send(
        self, path: str, body: dict[str, Any], request_id: str, out: Outcome
    ) -> Response:
        try:
            return await self.post(path, body, request_id)
        except NOT_STARTED as exc:
            log.info("gateway.engine_retry", request_id=request_id, error=repr(exc))
        return await self.post(path, body, request_id, fresh=True)

    async def healthy(self) -> bool:
        try:
            return (await self.http.get("/health", timeout=2.0)).status_code == 200
        except httpx.HTTPError:
            return False

    async def complete(
        self, path: str, body: dict[str, Any], request_id: str, out: Outcome
    ) -> tuple[int, bytes]:
        return await complete(self._send, path, body, request_id, out)

    async def open_stream(
        self, path: str, body: dict[str, Any], request_id: str, out: Outcome
    ) -> Response:
        return await open_stream(self._send, path, body, request_id, out)

    @staticmethod
    def relay(r: Response, out: Outcome, done: Callable[[], None]) -> AsyncIterator[bytes]:
        return relay(r, out, done)


async def complete(
    send: Send, path: str, body: dict[str, Any], request_id: str, out: Outcome
) -> tuple[int, bytes]:
    """A whole answer: status and body; usage, tool calls (and the answer) noted in `out`."""
    started = time.perf_counter()
    r = await send(path, body, request_id, out)
    try:
        content = await r.aread()
    finally:
        await r.aclose()
    out.first_byte_s = time.perf_counter() - started
    out.status = r.status_code
    if r.status_code == 200:
        with contextlib.suppress(orjson.JSONDecodeError):
            out.take_answer(orjson.loads(content))
    else:
        out.engine_error = engine_error_message(content)
    return r.status_code, content


async def open_stream(
    send: Send, path: str, body: dict[str, Any], request_id: str, out: Outcome
) -> Response:
    """A stream's response, head read; a refusal's body is read into `out.extra["content"]`."""
    options = body.get("stream_options")
    caller_wants_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    out.extra["strip_usage"] = not caller_wants_usage
    if not caller_wants_usage:
        body = {**body, "stream_options": {**(options or {}), "include_usage": True}}
    started = time.perf_counter()
    r = await send(path, body, request_id, out)
    out.status = r.status_code
    out.extra["started"] = started
    if r.status_code != 200:
        content = await r.aread()
        await r.aclose()
        out.engine_error = engine_error_message(content)
        out.extra["content"] = content
    return r


async def relay(r: Response, out: Outcome, done: Callable[[], None]) -> AsyncIterator[bytes]:
    """Yield the engine's SSE bytes, event by event; note usage and tool calls on the way."""
    strip = bool(out.extra.get("strip_usage"))
    buf = b""
    try:
        async for chunk in r.aiter_raw():
            if out.first_byte_s is None:
                out.first_byte_s = time.perf_counter() - out.extra["started"]
            buf += chunk
            *events, buf = buf.split(b"\n\n")
            keep = [e for e in events if not _usage_event(e, out, strip)]
            if keep:
                yield b"".join(e + b"\n\n" for e in keep)
        if buf:
            yield buf
    except httpx.HTTPError as exc:  # the caller has the head: nothing can be replayed
        out.status, out.engine_error = 502, f"stream cut: {exc!r}"
        metrics.STREAM_FAILURES.labels(out.engine or "engine").inc()
        log.warning(
            "gateway.stream_cut",
            engine=out.engine,
            after_first_byte=out.first_byte_s is not None,
            error=repr(exc),
        )
        raise
    finally:
        await r.aclose()
        done()


def _usage_event(event: bytes, out: Outcome, strip: bool) -> bool:
    """Note the event's usage and tool-call deltas (parsed only when it names either, or when
    the answer is assembled for a trace); True when this is the engine's usage-only event and
    the caller did not ask for it."""
    if not event.startswith(b"data: {"):
        return False
    calls = b'"tool_calls"' in event
    if out.answer is None and not calls and b'"usage"' not in event:
        return False
    try:
        data = orjson.loads(event[6:])
    except orjson.JSONDecodeError:
        return False
    if not isinstance(data, dict):
        return False
    if calls:
        out.take_deltas(data)
    if out.answer is not None:
        out.answer.feed(data)
    usage = data.get("usage")
    if usage:
        out.take_usage(usage)
    return strip and bool(usage) and not data.get("choices")
