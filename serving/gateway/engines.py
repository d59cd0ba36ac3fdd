"""The engines one gateway serves its base model from (issue 19), and forwarding across them.

Engines are named by URL (`engine_urls`, default the one `engine_url`) or found through the DNS
name of a headless Service (`engine_dns`), re-resolved every `engine_dns_refresh_seconds`: an
address that appears is an engine, one that goes away is retired once its requests finished.
Each is polled every `engine_poll_seconds` for health, load and the adapters it holds
(engine_state.py), and gets its own `EngineClient` (connections) and in-flight count.

Which engine serves a request is balance.py's (affinity by the version's engine name, spill,
or the bench's random / least-loaded). A request that fails before the engine's response head
(refused, reset: nothing reached the caller) marks that engine down until its next good poll
(polled at once: a stale keep-alive connection is not a dead engine) and is sent once more: to
another engine, else to the same one on a fresh connection. With no engine up, the engines are
polled again (at most every RECHECK_SECONDS) and, still none, the request is a 503 with
Retry-After. Everything runs on the event loop's thread; nothing here is locked.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog

from registry.settings import Settings
from serving.gateway import errors, metrics
from serving.gateway.balance import Candidate, Policy, RateMeter, choose
from serving.gateway.engine_state import Engine, Tasks, engine_id, forget, getaddrinfo, poll
from serving.gateway.proxy import NOT_STARTED, EngineClient, Outcome, Send, complete
from serving.gateway.proxy import open_stream as _open_stream
from serving.gateway.proxy import relay as _relay
from serving.gateway.routing import Route
from serving.gateway.upstream import Response

log = structlog.get_logger(__name__)
RECHECK_SECONDS = 0.25  # with no engine up, how often a request may poll them all again
Lookup = Callable[[str, int], Awaitable[list[str]]]  # (host, port) -> addresses


class EnginePool:
    """The gateway's engines: `app.state.engine_client` (forwarding as `EngineClient` does,
    given the request's route)."""

    def __init__(
        self,
        settings: Settings,
        api_key: str,
        *,
        lookup: Lookup = getaddrinfo,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.api_key, self.timeout = api_key, settings.engine_timeout_seconds
        self.policy = Policy(
            mode=settings.gateway_routing,
            spill_queue=settings.gateway_spill_queue,
            replica_rps=settings.gateway_replica_rps,
            max_replicas=settings.gateway_max_replicas,
        )
        self.poll_seconds = settings.engine_poll_seconds
        self.poll_timeout = min(5.0, max(1.0, self.poll_seconds))
        self.dns, self.dns_refresh = settings.engine_dns, settings.engine_dns_refresh_seconds
        self.lookup, self.clock, self.rng = lookup, clock, rng or random.Random()
        self.rates = RateMeter(clock=clock)
        self.engines: dict[str, Engine] = {}
        self.last_poll = -math.inf
        self._tasks = Tasks()
        self._poke: asyncio.Event | None = None
        for url in settings.resolved_engine_urls:
            self._add(engine_id(url), url)

    async def start(self) -> None:
        """Find and poll the engines once, then keep doing it in the background."""
        self._poke = asyncio.Event()
        if self.dns:
            await self.resolve()
            self._tasks.spawn(self._every(self.dns_refresh, self.resolve))
        await self.poll()
        self._tasks.spawn(self._poll_loop(self._poke))

    async def close(self) -> None:
        await self._tasks.cancel()
        for engine in list(self.engines.values()):
            await engine.client.close()

    def counts(self) -> tuple[int, int]:
        """(healthy, known) engines."""
        return sum(e.healthy is True for e in self.engines.values()), len(self.engines)

    async def ready(self) -> tuple[int, int]:
        """`counts()`, polled now when the background poll is not running (or is late)."""
        if self.clock() - self.last_poll > 2 * self.poll_seconds + self.poll_timeout:
            await self.poll()
        return self.counts()

    # Membership ------------------------------------------------------------------------------

    def _add(self, name: str, url: str) -> Engine:
        client = EngineClient(url, self.api_key, self.timeout)
        engine = self.engines[name] = Engine(name, client)
        metrics.ENGINE_INFLIGHT.labels(name).set(0)
        return engine

    async def resolve(self) -> None:
        """Engines = the addresses the DNS name has now; a failed lookup changes nothing."""
        host, _, port = (self.dns or "").rpartition(":")
        try:
            addresses = await self.lookup(host, int(port))
        except OSError as exc:
            log.warning("gateway.engine_dns_failed", name=self.dns, error=str(exc))
            return
        names = {f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addresses}
        added, gone = names - self.engines.keys(), self.engines.keys() - names
        for name in sorted(added):
            self._add(name, f"http://{name}")
        for name in gone:
            self._tasks.spawn(self._retire(self.engines.pop(name)))
        if added or gone:
            log.info("gateway.engines", engines=sorted(names), added=sorted(added))
            if self._poke is not None:
                self._poke.set()

    async def _retire(self, engine: Engine) -> None:
        for _ in range(int(self.timeout) + 1):  # its requests finish first
            if engine.inflight == 0:
                break
            await asyncio.sleep(1.0)
        await engine.client.close()
        forget(engine)

    # Polling ---------------------------------------------------------------------------------

    async def _every(self, seconds: float, work: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await work()
            except Exception:
                log.exception("gateway.engine_background_failed")

    async def _poll_loop(self, poke: asyncio.Event) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(poke.wait(), self.poll_seconds)
            poke.clear()
            try:
                await self.poll()
            except Exception:
                log.exception("gateway.engine_poll_failed")
            await asyncio.sleep(min(0.1, self.poll_seconds))  # a burst of pokes: one poll

    async def poll(self) -> None:
        self.last_poll = self.clock()
        await asyncio.gather(
            *(poll(e, self.poll_timeout, self.clock) for e in list(self.engines.values()))
        )

    # Routing and forwarding ------------------------------------------------------------------

    def pick(
        self, key: str, rate: float = 0.0, *, exclude: frozenset[str] = frozenset()
    ) -> Engine | None:
        """The engine for a request for `key` (an engine name) among the routable ones."""
        up = [e for e in self.engines.values() if e.healthy is not False and e.name not in exclude]
        candidates = [Candidate(e.name, e.load) for e in up]
        decision = choose(key, candidates, self.policy, rate=rate, rng=self.rng)
        if decision is None:
            return None
        metrics.ROUTING.labels("retry" if exclude else decision.kind).inc()
        return self.engines[decision.engine]

    async def _first(self, key: str) -> Engine:
        rate = self.rates.hit(key)
        engine = self.pick(key, rate)
        if engine is None and self.clock() - self.last_poll >= RECHECK_SECONDS:
            if self.dns:
                await self.resolve()  # engines may have moved
            await self.poll()  # one may be back since the last poll
            engine = self.pick(key, rate)
        if engine is None:
            metrics.ROUTING.labels("none").inc()
            wait = str(max(1, math.ceil(self.poll_seconds)))
            raise errors.GatewayError(
                503,
                "No inference engine is available right now; retry shortly.",
                type_="service_unavailable",
                code="engine_unavailable",
                headers={"Retry-After": wait},
            )
        return engine

    def _sender(self, key: str) -> Send:
        async def send(path: str, body: dict[str, Any], request_id: str, out: Outcome) -> Response:
            engine = await self._first(key)
            try:
                r = await self._post(engine, path, body, request_id, out)
            except NOT_STARTED as exc:
                self._failed(engine, exc, request_id)
                other = self.pick(key, exclude=frozenset({engine.name}))
                fresh = other is None  # the same engine, on a new connection
                return await self._post(other or engine, path, body, request_id, out, fresh)
            if r.status_code == 404 and await _lost_adapter(r, key):
                # The registry resolved this version, so the engine's "does not exist" is its
                # cache evicting the adapter between vLLM's model check and its use: once more.
                await r.aclose()
                self._release(out)
                metrics.ROUTING.labels("retry").inc()
                log.info("gateway.engine_lost_adapter", engine=engine.name, model=key)
                return await self._post(engine, path, body, request_id, out)
            return r

        return send

    async def _post(
        self,
        engine: Engine,
        path: str,
        body: dict[str, Any],
        request_id: str,
        out: Outcome,
        fresh: bool = False,
    ) -> Response:
        engine.inflight += 1
        try:
            r = await engine.client.post(path, body, request_id, fresh=fresh)
        except BaseException:
            engine.inflight -= 1
            raise
        metrics.ENGINE_INFLIGHT.labels(engine.name).set(engine.inflight)
        metrics.ENGINE_REQUESTS.labels(engine.name).inc()
        if engine.healthy is False:  # it answered: up (its next poll confirms)
            engine.healthy = True
            metrics.ENGINE_HEALTHY.labels(engine.name).set(1)
        out.engine, out.extra["held"] = engine.name, engine
        return r

    def _failed(self, engine: Engine, exc: Exception, request_id: str) -> None:
        if engine.healthy is not False:
            metrics.ENGINE_DOWN.labels(engine.name).inc()
        engine.healthy, engine.failed_at = False, self.clock()
        metrics.ENGINE_HEALTHY.labels(engine.name).set(0)
        metrics.ENGINE_FAILURES.labels(engine.name).inc()
        log.warning(
            "gateway.engine_failed", engine=engine.name, request_id=request_id, error=repr(exc)
        )
        if self._poke is not None:
            self._poke.set()  # a stale keep-alive connection is not a dead engine: look now

    def _release(self, out: Outcome) -> None:
        engine = out.extra.pop("held", None)
        if isinstance(engine, Engine):
            engine.inflight -= 1
            metrics.ENGINE_INFLIGHT.labels(engine.name).set(engine.inflight)

    async def complete(
        self, path: str, body: dict[str, Any], request_id: str, out: Outcome, route: Route
    ) -> tuple[int, bytes]:
        try:
            return await complete(self._sender(route.engine_name), path, body, request_id, out)
        finally:
            self._release(out)

    async def open_stream(
        self, path: str, body: dict[str, Any], request_id: str, out: Outcome, route: Route
    ) -> Response:
        try:
            r = await _open_stream(self._sender(route.engine_name), path, body, request_id, out)
        except BaseException:
            self._release(out)
            raise
        if out.status != 200:
            self._release(out)
        return r

    def relay(self, r: Response, out: Outcome, done: Callable[[], None]) -> AsyncIterator[bytes]:
        def finished() -> None:
            self._release(out)
            done()

        return _relay(r, out, finished)


async def _lost_adapter(r: Response, key: str) -> bool:
    """A 404 naming our version's engine name (read into the response; callers read it again
    from there)."""
    content = await r.aread()
    return key.startswith("lpx-") and key.encode() in content
