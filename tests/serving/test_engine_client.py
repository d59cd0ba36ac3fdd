"""The gateway's engine client against a scripted HTTP server on a real socket: a request whose
connection closed before any response byte is retried once on a fresh connection; a request the
engine answered (even in part) is never sent twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from serving.gateway.proxy import EngineClient, Outcome

OK = b'{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}'
SSE = b'data: {"choices":[{"text":"hi"}]}\n\ndata: [DONE]\n\n'

# One behaviour per accepted connection, in order; the last one repeats.
Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)


async def close_silently(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.close()


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:  # keep-alive: answer every request on this connection
        try:
            await _read_request(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(OK)}\r\n\r\n".encode()
            + OK
        )
        await writer.drain()


async def answer_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        + f"content-length: {len(SSE)}\r\n\r\n".encode()
        + SSE
    )
    await writer.drain()
    writer.close()


async def half_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + OK[:10])
    await writer.drain()
    writer.close()


class Script:
    def __init__(self, behaviours: list[Behaviour]) -> None:
        self.behaviours = behaviours
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        behaviour = self.behaviours[min(self.connections, len(self.behaviours) - 1)]
        self.connections += 1
        try:
            await behaviour(reader, writer)
        finally:
            writer.close()


@asynccontextmanager
async def engine(behaviours: list[Behaviour]) -> AsyncIterator[tuple[EngineClient, Script]]:
    script = Script(behaviours)
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = EngineClient(f"http://127.0.0.1:{port}", "key", timeout=5)
    try:
        yield client, script
    finally:
        await client.close()
        server.close()
        await server.wait_closed()


def test_a_connection_closed_before_any_response_byte_is_retried_once() -> None:
    async def run() -> None:
        async with engine([close_silently, answer]) as (client, script):
            out = Outcome()
            status, content = await client.complete("/v1/completions", {}, "r1", out)
            assert (status, content, out.prompt_tokens) == (200, OK, 3)
            assert script.connections == 2

    asyncio.run(run())


def test_a_stream_whose_connection_closed_before_any_byte_is_retried_once() -> None:
    async def run() -> None:
        async with engine([close_silently, answer_stream]) as (client, script):
            out = Outcome()
            r = await client.open_stream("/v1/completions", {"stream": True}, "r1", out)
            assert out.status == 200
            body = b"".join([c async for c in client.relay(r, out, lambda: None)])
            assert b'"hi"' in body and script.connections == 2

    asyncio.run(run())


def test_a_pooled_connection_the_engine_closed_is_not_an_error() -> None:
    """The engine closes a keep-alive connection after answering (as uvicorn does after an
    unhandled error): the next request that picks it from the pool still succeeds."""

    async def once_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(OK)}\r\n\r\n".encode()
            + OK
        )
        await writer.drain()
        await _read_request(reader)  # the next request arrives, and is dropped
        writer.close()

    async def run() -> None:
        async with engine([once_then_close, answer]) as (client, script):
            for _ in range(3):
                status, _ = await client.complete("/v1/completions", {}, "r", Outcome())
                assert status == 200
            # 1: answered, then dropped the second request; 2: its retry (a fresh connection,
            # closed after use); 3: a new pooled connection for the third request
            assert script.connections == 3

    asyncio.run(run())


def test_a_response_cut_after_its_first_bytes_is_never_replayed() -> None:
    async def run() -> None:
        async with engine([half_answer, answer]) as (client, script):
            with pytest.raises(httpx.HTTPError):
                await client.complete("/v1/completions", {}, "r1", Outcome())
            assert script.connections == 1

    asyncio.run(run())


def test_an_engine_that_stays_down_is_an_error_after_one_retry() -> None:
    async def run() -> None:
        async with engine([close_silently]) as (client, script):
            with pytest.raises(httpx.TransportError):
                await client.complete("/v1/completions", {}, "r1", Outcome())
            assert script.connections == 2

    asyncio.run(run())


def test_keep_alive_connections_are_reused() -> None:
    async def run() -> None:
        async with engine([answer]) as (client, script):
            for _ in range(5):
                status, content = await client.complete("/v1/completions", {}, "r", Outcome())
                assert (status, content) == (200, OK)
            assert script.connections == 1

    asyncio.run(run())


def test_a_chunked_stream_is_relayed_event_by_event() -> None:
    """The caller has the first event while the engine has not written the second yet."""
    relayed = asyncio.Event()

    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for event in (b'data: {"choices":[{"text":"a"}]}\n\n', b"data: [DONE]\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            await asyncio.wait_for(relayed.wait(), 5)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def run() -> None:
        async with engine([chunked]) as (client, _):
            out = Outcome()
            r = await client.open_stream("/v1/completions", {"stream": True}, "r1", out)
            chunks = []
            async for chunk in client.relay(r, out, lambda: None):
                chunks.append(chunk)
                relayed.set()
            assert chunks == [b'data: {"choices":[{"text":"a"}]}\n\n', b"data: [DONE]\n\n"]

    asyncio.run(run())


def test_an_engine_that_does_not_answer_in_time_is_a_timeout_never_replayed() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(2)

    async def run() -> None:
        script = Script([silent])
        server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = EngineClient(f"http://127.0.0.1:{port}", "key", timeout=0.3)
        try:
            with pytest.raises(httpx.ReadTimeout):
                await client.complete("/v1/completions", {}, "r1", Outcome())
            assert script.connections == 1
        finally:
            await client.close()
            server.close()

    asyncio.run(run())
