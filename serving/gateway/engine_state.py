"""One engine as the gateway sees it (issue 19), and reading that from the engine itself.

- health: GET /health answers 200. A refused connection or another status marks an engine down
  at once; a health check that only timed out does so on the SLOW_POLLS-th in a row (a busy
  engine on a loaded host answers late, and one late answer must not empty the pool);
- load: `vllm:num_requests_waiting` + `vllm:num_requests_running` from GET /metrics (summed over
  label sets); between polls the gateway's own in-flight count moves it, never below that count;
- residency: the adapter versions (our engine names) on GET /v1/models, asked with the engine
  key. vLLM lists there every name its resolver loaded; our resolver unloads a name when its
  cache evicts the files (serving/resolver.py), so the list is what the engine holds, loaded
  idle adapters included (unlike `vllm:lora_requests_info`, which lists only running and
  waiting ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import structlog

from serving.gateway import metrics
from serving.gateway.proxy import EngineClient
from serving.names import parse_engine_name

log = structlog.get_logger(__name__)
SLOW_POLLS = 2  # health checks in a row that timed out before an up engine is marked down
_LOAD = re.compile(r"^vllm:num_requests_(?:waiting|running)(?:\{[^}]*\})?\s+(\S+)", re.M)
PER_ENGINE = (
    metrics.ENGINE_HEALTHY,
    metrics.ENGINE_INFLIGHT,
    metrics.ENGINE_LOAD,
    metrics.ENGINE_RESIDENT,
    metrics.ENGINE_REQUESTS,
    metrics.ENGINE_FAILURES,
    metrics.ENGINE_DOWN,
    metrics.STREAM_FAILURES,
)


@dataclass(eq=False)
class Engine:
    name: str  # host:port, its identity in the rendezvous ranking
    client: EngineClient
    healthy: bool | None = None  # None: not polled yet (routable)
    reported: int = 0  # waiting + running at the last poll
    inflight: int = 0  # this gateway's requests on it now
    inflight_at_poll: int = 0
    resident: frozenset[str] = frozenset()
    failed_at: float = -math.inf  # a request failed on it before its head
    slow_polls: int = 0  # health checks in a row that timed out

    @property
    def load(self) -> int:
        return max(self.inflight, self.reported + self.inflight - self.inflight_at_poll)


def engine_id(url: str) -> str:
    u = httpx.URL(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    return f"[{u.host}]:{port}" if ":" in u.host else f"{u.host}:{port}"


def parse_load(text: str) -> int:
    return round(sum(float(v) for v in _LOAD.findall(text)))


def parse_resident(doc: Any) -> frozenset[str]:
    data = doc.get("data") if isinstance(doc, dict) else None
    ids = (m.get("id") for m in data if isinstance(m, dict)) if isinstance(data, list) else ()
    return frozenset(i for i in ids if isinstance(i, str) and parse_engine_name(i) is not None)


async def getaddrinfo(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass
class Tasks:
    running: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def cancel(self) -> None:
        for task in list(self.running):
            task.cancel()
        for task in list(self.running):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def poll(engine: Engine, timeout: float, clock: Callable[[], float]) -> None:
    """Read health, load and residency from the engine; a request that failed on it while
    the poll was on its way keeps it down."""
    started, inflight, http = clock(), engine.inflight, engine.client.http
    health, load, models = await asyncio.gather(
        *(http.get(p, timeout=timeout) for p in ("/health", "/metrics", "/v1/models")),
        return_exceptions=True,
    )
    up = isinstance(health, httpx.Response) and health.status_code == 200
    engine.slow_polls = engine.slow_polls + 1 if isinstance(health, httpx.TimeoutException) else 0
    if not up and engine.healthy and 0 < engine.slow_polls < SLOW_POLLS:
        log.info("gateway.engine_slow_health", engine=engine.name, polls=engine.slow_polls)
        up = True  # late, not gone: the next poll decides
    if engine.failed_at >= started:
        up = False  # a request failed on it while this poll was on its way
    if up != engine.healthy:
        log.info("gateway.engine_up" if up else "gateway.engine_down", engine=engine.name)
        if not up:
            metrics.ENGINE_DOWN.labels(engine.name).inc()
    engine.healthy = up
    metrics.ENGINE_HEALTHY.labels(engine.name).set(1 if up else 0)
    if isinstance(load, httpx.Response) and load.status_code == 200:
        engine.reported, engine.inflight_at_poll = parse_load(load.text), inflight
        metrics.ENGINE_LOAD.labels(engine.name).set(engine.reported)
    if isinstance(models, httpx.Response) and models.status_code == 200:
        with contextlib.suppress(orjson.JSONDecodeError):
            _resident(engine, parse_resident(orjson.loads(models.content)))


def _resident(engine: Engine, resident: frozenset[str]) -> None:
    for model in resident - engine.resident:
        metrics.ENGINE_ADAPTER.labels(engine.name, model).set(1)
    for model in engine.resident - resident:
        _forget(metrics.ENGINE_ADAPTER, engine.name, model)
    engine.resident = resident
    metrics.ENGINE_RESIDENT.labels(engine.name).set(len(resident))


def forget(engine: Engine) -> None:
    """Drop a retired engine's series."""
    for metric in PER_ENGINE:
        _forget(metric, engine.name)
    for model in engine.resident:
        _forget(metrics.ENGINE_ADAPTER, engine.name, model)


def _forget(metric: Any, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
