"""engines.py against small fake engines on real sockets (uvicorn, or a raw asyncio server for
connections that break): polling of health, load and residency; affinity; the retry on another
engine; streams cut after their head; no engine up; DNS membership; settings."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route as HttpRoute

from registry.settings import Settings
from serving.gateway import metrics
from serving.gateway.balance import rank
from serving.gateway.engine_state import parse_load, parse_resident
from serving.gateway.engines import EnginePool
from serving.gateway.errors import GatewayError
from serving.gateway.proxy import Outcome
from serving.gateway.routing import Route

KEY = "engine-key"
RESIDENT = ["lpx-" + "a" * 32, "lpx-" + "b" * 32]
METRICS = """# HELP vllm:num_requests_running Number of requests in model execution batches.
vllm:num_requests_running{engine="0",model_name="tiny"} 2.0
vllm:num_requests_waiting{engine="0",model_name="tiny"} 3.0
vllm:num_requests_waiting_by_reason{engine="0",model_name="tiny",reason="capacity"} 3.0
"""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class FakeEngine:
    """vLLM's routes the gateway uses, on a real port; `up()` / `down()` start and stop it."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host, self.port = host, port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.name = f"{host}:{self.port}"
        self.seen: list[dict[str, Any]] = []
        self.waiting = 0
        self.gate: asyncio.Event | None = None  # set: completions wait for it
        self.forget = 0  # next completions answered 404 for the model (a cache eviction race)
        self.health_delay = 0.0  # seconds /health takes to answer (a busy engine)
        self.server: uvicorn.Server | None = None
        self.task: asyncio.Task[None] | None = None

    def app(self) -> Starlette:
        async def health(_: Request) -> Response:
            await asyncio.sleep(self.health_delay)
            return Response(status_code=200)

        async def prom(_: Request) -> Response:
            text = f'vllm:num_requests_waiting{{engine="0"}} {self.waiting}.0\n'
            return PlainTextResponse(text)

        async def models(request: Request) -> Response:
            if request.headers.get("authorization") != f"Bearer {KEY}":
                return JSONResponse({"error": "key"}, status_code=401)
            data = [{"id": "tiny"}] + [{"id": n, "parent": "tiny"} for n in RESIDENT]
            return JSONResponse({"object": "list", "data": data})

        async def complete(request: Request) -> Response:
            body = await request.json()
            self.seen.append(body)
            if self.forget > 0:
                self.forget -= 1
                message = f"The model `{body['model']}` does not exist."
                return JSONResponse({"error": {"message": message}}, status_code=404)
            if self.gate is not None:
                await self.gate.wait()
            if body.get("stream"):
                chunks = [b'data: {"choices":[{"text":"hi"}]}\n\n', b"data: [DONE]\n\n"]

                async def gen() -> AsyncIterator[bytes]:
                    for c in chunks:
                        yield c

                return StreamingResponse(gen(), media_type="text/event-stream")
            usage = {"prompt_tokens": 3, "completion_tokens": 2}
            return JSONResponse({"choices": [], "usage": usage, "engine": self.name})

        return Starlette(
            routes=[
                HttpRoute("/health", health),
                HttpRoute("/metrics", prom),
                HttpRoute("/v1/models", models),
                HttpRoute("/v1/completions", complete, methods=["POST"]),
            ]
        )

    async def up(self) -> None:
        config = uvicorn.Config(
            self.app(), host=self.host, port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)

    async def down(self) -> None:
        assert self.server is not None and self.task is not None
        self.server.should_exit = self.server.force_exit = True
        await self.task


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_engine(handle: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """An engine that accepts connections and does `handle` with each: (url, connections)."""
    connections: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handle(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", connections
    finally:
        server.close()


async def _read_head(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = [
        int(x.split(b":")[1])
        for x in head.split(b"\r\n")
        if x.lower().startswith(b"content-length")
    ]
    await reader.readexactly(length[0] if length else 0)


async def close_before_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_head(reader)  # the engine "dies" mid-generation, before any response byte


async def cut_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_head(reader)
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    event = b'data: {"choices":[{"text":"hi"}]}\n\n'
    writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
    await writer.drain()
    await asyncio.sleep(0.05)  # then the engine dies


def pool_of(urls: list[str], **settings: Any) -> EnginePool:
    s = Settings(engine_urls=",".join(urls), **{"engine_poll_seconds": 0.2, **settings})
    return EnginePool(s, KEY)


def route_for(key: str) -> Route:
    import uuid

    return Route(uuid.uuid4(), "support", uuid.uuid4(), 1, key)


def key_first_on(name: str, names: list[str]) -> str:
    return next(k for k in (f"lpx-{i:032x}" for i in range(1000)) if rank(k, names)[0] == name)


async def complete(pool: EnginePool, key: str) -> tuple[int, Outcome]:
    out = Outcome()
    status, _ = await pool.complete("/v1/completions", {"model": key}, "r", out, route_for(key))
    return status, out


def test_parsers_read_what_vllm_serves() -> None:
    assert parse_load(METRICS) == 5  # waiting + running, not the by-reason breakdown
    assert parse_load("") == 0
    doc = {"data": [{"id": "tiny"}, {"id": RESIDENT[0]}, {"id": "lpx-nothex"}, "junk"]}
    assert parse_resident(doc) == {RESIDENT[0]}
    assert parse_resident({"data": None}) == frozenset() == parse_resident([1])


def test_a_poll_reads_health_load_and_residency_from_each_engine() -> None:
    async def run() -> None:
        engines = [FakeEngine(), FakeEngine()]
        for e in engines:
            await e.up()
        engines[1].waiting = 7
        dead = f"http://127.0.0.1:{free_port()}"
        pool = pool_of([e.url for e in engines] + [dead])
        await pool.start()
        try:
            a, b = (pool.engines[e.name] for e in engines)
            assert (a.healthy, a.reported, a.resident) == (True, 0, frozenset(RESIDENT))
            assert (b.healthy, b.reported) == (True, 7)
            assert pool.engines[dead.removeprefix("http://")].healthy is False
            assert pool.counts() == (2, 3)
            assert metrics.ENGINE_RESIDENT.labels(a.name)._value.get() == 2
            assert metrics.ENGINE_ADAPTER.labels(a.name, RESIDENT[0])._value.get() == 1
            engines[1].waiting = 1
            await asyncio.sleep(0.5)  # the background poll
            assert b.reported == 1
        finally:
            await pool.close()
            for e in engines:
                await e.down()

    asyncio.run(run())


def test_each_version_goes_to_its_first_ranked_engine() -> None:
    async def run() -> None:
        engines = [FakeEngine() for _ in range(3)]
        for e in engines:
            await e.up()
        pool = pool_of([e.url for e in engines])
        await pool.start()
        names = [e.name for e in engines]
        try:
            for i in range(30):
                key = f"lpx-{i:032x}"
                for _ in range(2):
                    status, out = await complete(pool, key)
                    assert (status, out.engine) == (200, rank(key, names)[0])
            assert sum(len(e.seen) for e in engines) == 60
            assert all(e.inflight == 0 for e in pool.engines.values())
        finally:
            await pool.close()
            for e in engines:
                await e.down()

    asyncio.run(run())


def test_a_dead_engine_s_requests_are_retried_once_on_another() -> None:
    async def run() -> None:
        engines = [FakeEngine(), FakeEngine()]
        for e in engines:
            await e.up()
        pool = pool_of([e.url for e in engines])
        await pool.start()
        names = [e.name for e in engines]
        key = key_first_on(names[0], names)
        try:
            assert (await complete(pool, key))[1].engine == names[0]
            await engines[0].down()
            retries = metrics.ROUTING.labels("retry")._value.get()
            downs = metrics.ENGINE_DOWN.labels(names[0])._value.get()
            status, out = await complete(pool, key)  # refused: sent to the other one
            assert (status, out.engine) == (200, names[1])
            assert metrics.ROUTING.labels("retry")._value.get() == retries + 1
            assert pool.engines[names[0]].healthy is False
            status, out = await complete(pool, key)  # marked down: no try on it at all
            assert (status, out.engine) == (200, names[1])
            assert metrics.ROUTING.labels("retry")._value.get() == retries + 1
            await asyncio.sleep(0.6)  # a poll that finds it still down is not a second mark
            assert metrics.ENGINE_DOWN.labels(names[0])._value.get() == downs + 1
            await engines[0].up()
            await asyncio.sleep(0.6)  # its next good poll
            assert (await complete(pool, key))[1].engine == names[0]
        finally:
            await pool.close()
            for e in engines:
                await e.down()

    asyncio.run(run())


def test_a_request_cut_before_the_response_head_is_retried_once_elsewhere() -> None:
    async def run() -> None:
        good = FakeEngine()
        await good.up()
        async with raw_engine(close_before_head) as (url, connections):
            pool = pool_of([url, good.url])  # not started: both routable until polled
            names = list(pool.engines)
            key = key_first_on(names[0], names)
            try:
                status, out = await complete(pool, key)
                assert (status, out.engine, len(connections), len(good.seen)) == (
                    200,
                    good.name,
                    1,
                    1,
                )
                assert pool.engines[names[0]].healthy is False
            finally:
                await pool.close()
        async with (
            raw_engine(close_before_head) as (url1, c1),
            raw_engine(close_before_head) as (url2, c2),
        ):
            pool = pool_of([url1, url2])
            try:
                with pytest.raises(httpx.TransportError):  # both failed: no third try
                    await complete(pool, key_first_on(list(pool.engines)[0], list(pool.engines)))
                assert (len(c1), len(c2)) == (1, 1)
                assert all(e.inflight == 0 for e in pool.engines.values())
            finally:
                await pool.close()
        await good.down()

    asyncio.run(run())


def test_a_stream_cut_after_its_first_byte_is_counted_not_replayed() -> None:
    async def run() -> None:
        good = FakeEngine()
        await good.up()
        async with raw_engine(cut_stream) as (url, connections):
            pool = pool_of([url, good.url])
            name = list(pool.engines)[0]
            key = key_first_on(name, list(pool.engines))
            before = metrics.STREAM_FAILURES.labels(name)._value.get()
            out, finished = Outcome(), []
            body = {"model": key, "stream": True}
            try:
                r = await pool.open_stream("/v1/completions", body, "r", out, route_for(key))
                assert (out.status, out.engine) == (200, name)
                got: list[bytes] = []
                with pytest.raises(httpx.HTTPError):
                    async for chunk in pool.relay(r, out, lambda: finished.append(1)):
                        got.append(chunk)
                assert b'"hi"' in b"".join(got) and finished == [1]
                assert metrics.STREAM_FAILURES.labels(name)._value.get() == before + 1
                assert out.status == 502 and len(connections) == 1 and good.seen == []
                assert pool.engines[name].inflight == 0
            finally:
                await pool.close()
        await good.down()

    asyncio.run(run())


def test_no_engine_up_is_a_503_with_retry_after_until_one_is_back() -> None:
    async def run() -> None:
        engine = FakeEngine()
        pool = pool_of([engine.url], engine_poll_seconds=30)
        await pool.start()  # polled: down
        try:
            with pytest.raises(GatewayError) as err:
                await complete(pool, "lpx-" + "c" * 32)
            assert err.value.status == 503 and err.value.headers["Retry-After"] == "30"
            assert await pool.ready() == (0, 1)
            await engine.up()
            await asyncio.sleep(0.3)  # no background poll for 30 s: the request looks again
            status, out = await complete(pool, "lpx-" + "c" * 32)
            assert (status, out.engine) == (200, engine.name)
        finally:
            await pool.close()
            await engine.down()

    asyncio.run(run())


def test_in_flight_requests_count_until_answered() -> None:
    async def run() -> None:
        engine = FakeEngine()
        await engine.up()
        engine.gate = asyncio.Event()
        pool = pool_of([engine.url])
        state = pool.engines[engine.name]
        try:
            pending = [asyncio.create_task(complete(pool, "lpx-" + "d" * 32)) for _ in range(3)]
            while len(engine.seen) < 3:
                await asyncio.sleep(0.01)
            assert state.inflight == 3 and state.load == 3
            engine.gate.set()
            await asyncio.gather(*pending)
            assert state.inflight == 0
        finally:
            await pool.close()
            await engine.down()

    asyncio.run(run())


def test_spill_and_random_modes_through_the_pool() -> None:
    async def run() -> None:
        engines = [FakeEngine(), FakeEngine()]
        for e in engines:
            await e.up()
        names = [e.name for e in engines]
        key = key_first_on(names[0], names)
        engines[0].waiting = 50
        pool = pool_of([e.url for e in engines], gateway_spill_queue=10)
        await pool.start()
        try:
            spills = metrics.ROUTING.labels("spill")._value.get()
            assert (await complete(pool, key))[1].engine == names[1]
            assert metrics.ROUTING.labels("spill")._value.get() == spills + 1
        finally:
            await pool.close()
        pool = pool_of([e.url for e in engines], gateway_routing="random")
        try:
            served = {(await complete(pool, key))[1].engine for _ in range(40)}
            assert served == set(names)
        finally:
            await pool.close()
            for e in engines:
                await e.down()

    asyncio.run(run())


def test_dns_membership_follows_the_addresses() -> None:
    async def run() -> None:
        port = free_port()
        engines = [FakeEngine("127.0.0.1", port), FakeEngine("127.0.0.2", port)]
        for e in engines:
            await e.up()
        answers: list[list[str] | OSError] = [["127.0.0.1", "127.0.0.2"]]

        async def lookup(host: str, p: int) -> list[str]:
            assert (host, p) == ("engines.ml.svc", port)
            answer = answers[-1]
            if isinstance(answer, OSError):
                raise answer
            return answer

        s = Settings(engine_dns=f"engines.ml.svc:{port}", engine_poll_seconds=0.2)
        pool = EnginePool(s, KEY, lookup=lookup)
        await pool.start()
        try:
            assert sorted(pool.engines) == sorted(e.name for e in engines)
            assert pool.counts() == (2, 2)
            answers.append(socket.gaierror("temporary failure"))
            await pool.resolve()
            assert len(pool.engines) == 2  # a failed lookup changes nothing
            answers.append(["127.0.0.2"])
            await pool.resolve()
            assert list(pool.engines) == [engines[1].name]
            key = "lpx-" + "e" * 32
            assert (await complete(pool, key))[1].engine == engines[1].name
        finally:
            await pool.close()
            for e in engines:
                await e.down()

    asyncio.run(run())


def test_engine_settings_are_validated() -> None:
    assert Settings().resolved_engine_urls == [Settings().resolved_engine_url]
    s = Settings(engine_urls="http://a:8100, http://b:8100/")
    assert s.resolved_engine_urls == ["http://a:8100", "http://b:8100"]
    assert Settings(engine_dns="engines:8100").resolved_engine_urls == []
    bad = [
        {"engine_urls": "a:8100"},
        {"engine_urls": "http://a:8100,http://a:8100"},
        {"engine_urls": "http://a:8100/v1"},
        {"engine_dns": "engines"},
        {"engine_dns": "http://engines:8100"},
        {"engine_dns": "engines:0"},
        {"engine_urls": "http://a:1", "engine_dns": "b:1"},
        {"gateway_routing": "round-robin"},
        {"gateway_max_replicas": 0},
    ]
    for kwargs in bad:
        with pytest.raises(ValidationError):
            Settings(**kwargs)


def test_the_gateway_names_the_engine_that_served(serving: Any) -> None:
    """On the real stack (session fixture `serving`): x-loraplex-engine on answers, the number
    of healthy engines on /readyz, and the engine itself listing the version as resident."""
    with httpx.Client(base_url=serving.gateway_url, trust_env=False, timeout=120) as gateway:
        body = {"model": "orders", "prompt": "hi", "max_tokens": 2, "temperature": 0}
        r = gateway.post("/v1/completions", json=body, headers=serving.tokens["acme"])
        assert r.status_code == 200, r.text
        assert r.headers["x-loraplex-engine"] == serving.engine_url.removeprefix("http://")
        ready = gateway.get("/readyz")
        assert ready.status_code == 200 and ready.headers["x-loraplex-engines"] == "1/1"
    models = httpx.get(
        f"{serving.engine_url}/v1/models",
        headers={"Authorization": f"Bearer {serving.engine_key}"},
        trust_env=False,
    ).json()
    assert parse_resident(models)  # what the pool reads: the version it just served


def test_an_engine_that_lost_the_adapter_mid_request_is_asked_once_more() -> None:
    """vLLM answers 404 when its cache evicted the adapter between its model check and its use;
    the registry resolved the version, so the gateway asks again (once) instead of telling the
    tenant its model does not exist."""

    async def run() -> None:
        engine = FakeEngine()
        await engine.up()
        pool = pool_of([engine.url])
        await pool.start()
        key = "lpx-" + "c" * 32
        try:
            engine.forget = 1
            status, out = await complete(pool, key)
            assert (status, len(engine.seen)) == (200, 2)
            assert pool.engines[engine.name].inflight == 0
            engine.forget = 2  # lost twice: the 404 goes back (no loop)
            status, out = await complete(pool, key)
            assert status == 404 and key in (out.engine_error or "")
            assert pool.engines[engine.name].inflight == 0
        finally:
            await pool.close()
            await engine.down()

    asyncio.run(run())
