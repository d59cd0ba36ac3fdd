"""The forward's HTTP/1.1 client: pooled keep-alive connections to one engine, on an asyncio
protocol with httptools' C parser (the one uvicorn uses).

httpx cost the gateway about 1.3 ms of CPU per request (its request and URL models, httpcore's
pool and anyio's stream layers, h11 in pure Python); this one writes the request head as bytes
and hands the body to the caller as the parser decodes it: about a tenth of that. It speaks only
what the engine needs: POST of a JSON body, answers with content-length or chunked bodies (or
read to the close), over TCP or TLS (`https://` engines, verified against the system's CAs), no
redirects, proxies or cookies; health polls and anything else go through httpx in `EngineClient`.

Failures are httpx's exception types, so callers keep one vocabulary: `ConnectError` (refused,
unreachable), `RemoteProtocolError` (closed before the response head, or a body cut short),
`ReadError`/`WriteError` (reset), `ConnectTimeout`/`ReadTimeout` (no byte for `timeout` s
while waiting for the head or the next body chunk).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httptools
import httpx

MAX_IDLE = 256
HIGH_WATER = 1 << 20  # bytes buffered before reading from the engine pauses
_BAD_VALUE = re.compile(r"[\x00-\x1f\x7f]")


class _Conn(asyncio.Protocol):
    """One connection: one request at a time; the response's body chunks queue until read."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: Any = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.waiter: asyncio.Future[None] | None = None
        self.error: Exception | None = None
        self.lost = self.head = self.complete = self.paused = False
        self.seen_bytes = self.framed = self.keep_alive = False
        self.status = 0

    def reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.head = self.complete = self.seen_bytes = self.framed = self.keep_alive = False
        self.status = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.seen_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed response from the engine: {exc}"))
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.head and not self.complete and self._until_close():
            self.on_message_complete()
        elif not self.complete:
            if not self.seen_bytes:
                error: Exception = httpx.RemoteProtocolError(
                    "the engine closed the connection before answering"
                )
            elif isinstance(exc, OSError):
                error = httpx.ReadError(repr(exc))
            else:
                error = httpx.RemoteProtocolError("the engine closed the connection mid-answer")
            self._fail(error)

    def pause_writing(self) -> None:  # the request body is small: nothing to hold back
        pass

    def resume_writing(self) -> None:
        pass

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()  # llhttp forgets it once complete
        self.head = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    def _until_close(self) -> bool:
        """No content-length and not chunked: the body ends with the connection."""
        return not self.framed

    def _fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Until the next event (head, body chunk, end, failure) or `timeout` s."""
        if self.error is not None:
            raise self.error
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        timer = loop.call_later(timeout, self._timed_out, self.waiter)
        try:
            await self.waiter
        finally:
            timer.cancel()
            self.waiter = None
        if self.error is not None:
            raise self.error

    @staticmethod
    def _timed_out(waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(TimeoutError())

    def take(self) -> bytes:
        data = b"".join(self.chunks) if len(self.chunks) != 1 else self.chunks[0]
        self.chunks.clear()
        self.buffered = 0
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        return data


class Response:
    """An engine's answer, head read; the body read with `aread` or `aiter_raw`, then `aclose`
    (which returns a whole, reusable connection to the pool)."""

    def __init__(self, upstream: Upstream, conn: _Conn, reuse: bool) -> None:
        self.status_code = conn.status
        self._upstream, self._conn, self._reuse = upstream, conn, reuse
        self._content: bytes | None = None
        self._closed = False

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            if conn.chunks:
                yield conn.take()
            elif conn.complete:
                return
            else:
                await self._wait()

    async def aread(self) -> bytes:
        if self._content is None:
            self._content = b"".join([chunk async for chunk in self.aiter_raw()])
        return self._content

    async def aclose(self) -> None:
        if self._closed:  # once: a second close must not touch a connection handed on
            return
        self._closed = True
        conn = self._conn
        if self._reuse and conn.complete and conn.keep_alive and not conn.lost and not conn.chunks:
            self._upstream.release(conn)
        else:
            conn.transport.close()

    async def _wait(self) -> None:
        try:
            await self._conn.wait(self._upstream.timeout)
        except TimeoutError as exc:
            self._conn.transport.close()
            raise httpx.ReadTimeout("no answer from the engine in time") from exc


class Upstream:
    """Keep-alive connections to one `http(s)://host:port` engine."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"engine URL must be http(s)://host[:port], not {base_url!r}")
        tls = url.scheme == "https"
        self.host, self.port = url.hostname, url.port or (443 if tls else 80)
        self.tls: ssl.SSLContext | None = ssl.create_default_context() if tls else None
        self.prefix = url.path.rstrip("/")
        self.timeout, self.connect_timeout = timeout, 5.0
        fixed = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._fixed = f"Host: {url.netloc}\r\n{fixed}".encode("latin-1")
        self._idle: list[_Conn] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    async def post(
        self, path: str, body: bytes, headers: dict[str, str], *, fresh: bool = False
    ) -> Response:
        """Sends the request and returns once the response head arrived (body not read)."""
        for value in headers.values():
            if _BAD_VALUE.search(value):
                raise httpx.LocalProtocolError("illegal character in a header value")
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head = (
            f"POST {self.prefix}{path} HTTP/1.1\r\n{extra}content-length: {len(body)}\r\n"
        ).encode("latin-1")
        conn = await self._connect() if fresh else self._pooled() or await self._connect()
        conn.reset()
        try:
            conn.transport.write(head + self._fixed + b"\r\n" + body)
        except OSError as exc:
            conn.transport.close()
            raise httpx.WriteError(repr(exc)) from exc
        try:
            while not conn.head:
                await conn.wait(self.timeout)
        except TimeoutError as exc:
            conn.transport.close()
            raise httpx.ReadTimeout("no answer from the engine in time") from exc
        except BaseException:
            conn.transport.close()
            raise
        return Response(self, conn, reuse=not fresh)

    def _pooled(self) -> _Conn | None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # connections belong to the loop that opened them
            self._drop_idle()
            self._loop = loop
        while self._idle:
            conn = self._idle.pop()
            if not conn.lost and not conn.transport.is_closing():
                return conn
        return None

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(_Conn, self.host, self.port, ssl=self.tls)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {self.host}:{self.port}") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"{self.host}:{self.port}: {exc}") from exc
        return conn

    def release(self, conn: _Conn) -> None:
        if len(self._idle) < MAX_IDLE and asyncio.get_running_loop() is self._loop:
            conn.error = None
            self._idle.append(conn)
        else:
            conn.transport.close()

    def _drop_idle(self) -> None:
        for conn in self._idle:
            with contextlib.suppress(Exception):
                conn.transport.abort()
        self._idle.clear()

    async def close(self) -> None:
        self._drop_idle()
