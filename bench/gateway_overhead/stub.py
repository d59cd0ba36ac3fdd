"""A fast stub of vLLM's OpenAI server on loopback: the gateway's upstream in the overhead bench.

    python -m bench.gateway_overhead.stub PORT

HTTP/1.1 keep-alive on an asyncio protocol (uvloop when installed), parsed by hand: a fixed
small completion for POST /v1/completions and /v1/chat/completions, a short SSE stream (chunked,
one write per event, usage event and [DONE] last) when the body asks for `"stream": true`,
and the engine's GET /health, /metrics and /v1/models. It costs a few tens of microseconds per
request, so what the gateway adds stands out from what the upstream costs.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Callable
from typing import Any

import orjson

USAGE = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
COMPLETION = orjson.dumps(
    {
        "id": "cmpl-stub",
        "object": "text_completion",
        "created": 1,
        "model": "stub",
        "choices": [{"index": 0, "text": " it is on", "logprobs": None, "finish_reason": "length"}],
        "usage": USAGE,
    }
)
_TOKENS = (" it", " is", " on", " its")
EVENTS = [
    b"data: "
    + orjson.dumps(
        {
            "id": "cmpl-stub",
            "object": "text_completion",
            "created": 1,
            "model": "stub",
            "choices": [{"index": 0, "text": t, "logprobs": None, "finish_reason": None}],
        }
    )
    + b"\n\n"
    for t in _TOKENS
]
USAGE_EVENT = (
    b"data: "
    + orjson.dumps({"id": "cmpl-stub", "object": "text_completion", "choices": [], "usage": USAGE})
    + b"\n\n"
)
DONE = b"data: [DONE]\n\n"
METRICS = (
    b'vllm:num_requests_running{model_name="tiny"} 0.0\n'
    b'vllm:num_requests_waiting{model_name="tiny"} 0.0\n'
)
MODELS = orjson.dumps({"object": "list", "data": [{"id": "tiny", "object": "model"}]})
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def _response(status: bytes, body: bytes, kind: bytes = b"application/json") -> bytes:
    head = b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n"
    return head % (status, kind, len(body)) + body


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)
GET = {
    b"/health": _response(b"200 OK", b""),
    b"/metrics": _response(b"200 OK", METRICS, b"text/plain"),
    b"/v1/models": _response(b"200 OK", MODELS),
}
NOT_FOUND = _response(b"404 Not Found", b'{"error":"not found"}')


class Stub(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's is not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head = self.buf[:end]
            match = _LENGTH.search(head)
            length = int(match[1]) if match else 0
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            self.answer(head, body)

    def answer(self, head: bytes, body: bytes) -> None:
        method, path, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
        if method == b"GET":
            self.transport.write(GET.get(path, NOT_FOUND))
        elif b'"stream":true' in body.replace(b" ", b""):
            asyncio.get_running_loop().create_task(self.stream(self.transport))
        else:
            self.transport.write(_response(b"200 OK", COMPLETION))

    @staticmethod
    async def stream(transport: Any) -> None:
        """One write per event, a loop turn apart: the gateway sees them as a real stream."""
        transport.write(STREAM_HEAD)
        for event in (*EVENTS, USAGE_EVENT, DONE):
            await asyncio.sleep(0)
            transport.write(_chunk(event))
        transport.write(b"0\r\n\r\n")


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Stub, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve(int(sys.argv[1])))


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    main()
