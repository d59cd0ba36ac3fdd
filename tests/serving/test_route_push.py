"""Push promotion (issue 19): a commit in the registry drops the gateway's cached route at once,
on real PostgreSQL; reconnects drop everything; a lookup in flight never stores a stale route."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import SecretStr
from sqlalchemy import create_engine, select, text

from registry.aliases.service import aliases
from registry.auth.principal import Principal
from registry.db import make_sessionmaker
from registry.models import Adapter, Tenant
from registry.settings import Settings
from serving.gateway.app import create_gateway
from serving.gateway.notify import APPLICATION, RouteListener
from serving.gateway.routing import Router
from serving.gateway.ttl import TTLMemo
from tests.registry.adapters.conftest import AdapterWorld
from tests.registry.live_db import LiveDB, live_db

RUNS = 20


@pytest.fixture
def live(pg_admin_url: str, s3_endpoint: str, tmp_path: Path) -> Iterator[LiveDB]:
    with live_db(pg_admin_url, s3_endpoint, tmp_path) as db:
        yield db


class Promoted:
    """acme's `support` with versions 1 and 2, production on 1; `move(n)` commits a move in a
    session of its own and returns when the commit started and when it returned."""

    def __init__(self, live: LiveDB, tmp_path: Path) -> None:
        self.aw = AdapterWorld(live.world, tmp_path / "tiny-base")
        for _ in range(2):
            assert self.aw.upload().status_code == 201
        assert self.aw.set_alias("production", 1).status_code == 200
        self.live = live
        self.tenant = uuid.UUID(self.aw.acme.tenant_id)
        self.sessions = live.world.stack.app.state.sessionmaker

    def move(self, number: int) -> tuple[float, float]:
        with self.sessions() as session:
            tenant = session.get(Tenant, self.tenant)
            adapter = session.scalars(
                select(Adapter).where(Adapter.tenant_id == self.tenant, Adapter.name == "support")
            ).one()
            assert tenant is not None
            aliases.set(
                session,
                actor=Principal.local_operator(),
                tenant=tenant,
                adapter=adapter,
                alias="production",
                number=number,
                reason="test",
            )
            started = time.perf_counter()
            session.commit()
            return started, time.perf_counter()

    def settings(self, tmp_path: Path, **overrides: Any) -> Settings:
        return Settings(home=tmp_path / "gw-home", database_url=self.live.url, **overrides)


@pytest.fixture
def promoted(live: LiveDB, tmp_path: Path) -> Promoted:
    return Promoted(live, tmp_path)


class Seen:
    """on_change calls, with the time each ran on the event loop."""

    def __init__(self, then: Callable[[uuid.UUID | None], None]) -> None:
        self.calls: list[tuple[float, uuid.UUID | None]] = []
        self.then = then

    def __call__(self, tenant_id: uuid.UUID | None) -> None:
        self.calls.append((time.perf_counter(), tenant_id))
        self.then(tenant_id)

    async def after(self, n: int, timeout: float = 5.0) -> tuple[float, uuid.UUID | None]:
        """The call after the first `n`, once it came."""
        deadline = time.monotonic() + timeout
        while len(self.calls) <= n:
            assert time.monotonic() < deadline, f"no on_change after {n} calls"
            await asyncio.sleep(0.0005)
        return self.calls[n]


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_commit_drops_the_cached_route_within_100_ms(promoted: Promoted, tmp_path: Path) -> None:
    router = Router(make_sessionmaker(promoted.live.world.stack.engine), ttl_seconds=60)
    seen = Seen(router.invalidate)
    listener = RouteListener(promoted.settings(tmp_path), seen)
    after_start, after_return, served = [], [], []

    async def main() -> None:
        listener.start()
        assert await asyncio.to_thread(listener.connected.wait, 10)
        await seen.after(0)  # the drop-all on connect
        assert _sample("loraplex_gateway_route_listener_connected") == 1.0
        for i in range(RUNS):
            target = 2 if i % 2 == 0 else 1
            assert (await router.route(promoted.tenant, "support")).version == 3 - target
            n = len(seen.calls)
            started, returned = await asyncio.to_thread(promoted.move, target)
            at, tenant = await seen.after(n)
            assert tenant == promoted.tenant
            assert router._memo.peek((promoted.tenant, "support")) is None
            assert (await router.route(promoted.tenant, "support")).version == target
            after_start.append(at - started)
            after_return.append(at - returned)
            served.append(time.perf_counter() - started)

    try:
        asyncio.run(main())
    finally:
        listener.stop()
    ms = [round(x * 1e3, 2) for x in sorted(after_start)]

    def figures(xs: list[float]) -> str:
        return f"p50={statistics.median(xs) * 1e3:.2f} max={max(xs) * 1e3:.2f}"

    print(
        f"\npush latency over {RUNS} commits (ms): commit call -> cache dropped "
        f"{figures(after_start)}; commit returned -> dropped {figures(after_return)}; "
        f"commit call -> new route served {figures(served)}"
    )
    assert max(after_start) < 0.1, ms
    assert _sample("loraplex_gateway_route_listener_connected") == 0.0  # stopped


def test_a_killed_listener_reconnects_and_drops_everything(
    promoted: Promoted, tmp_path: Path
) -> None:
    router = Router(make_sessionmaker(promoted.live.world.stack.engine), ttl_seconds=60)
    seen = Seen(router.invalidate)
    listener = RouteListener(promoted.settings(tmp_path), seen)
    admin = create_engine(promoted.live.url, isolation_level="AUTOCOMMIT")
    drops = _sample("loraplex_gateway_route_notifications_total", kind="all")

    def kill() -> int:
        with admin.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = :app AND datname = current_database()"
                    ),
                    {"app": APPLICATION},
                ).scalar_one()
            )

    async def main() -> None:
        listener.start()
        assert await asyncio.to_thread(listener.connected.wait, 10)
        await seen.after(0)
        assert (await router.route(promoted.tenant, "support")).version == 1
        i = len(seen.calls)
        assert await asyncio.to_thread(kill) == 1
        await asyncio.to_thread(promoted.move, 2)  # most likely while nobody listens
        while (await seen.after(i))[1] is not None:  # (or heard, if it was back already)
            i += 1
        assert listener.connected.is_set()  # the reconnect dropped every route
        assert (await router.route(promoted.tenant, "support")).version == 2
        n = len(seen.calls)  # and it listens again
        await asyncio.to_thread(promoted.move, 1)
        assert (await seen.after(n))[1] == promoted.tenant
        assert (await router.route(promoted.tenant, "support")).version == 1

    try:
        asyncio.run(main())
    finally:
        listener.stop()
        admin.dispose()
    assert _sample("loraplex_gateway_route_notifications_total", kind="all") == drops + 2


def test_a_lookup_in_flight_during_a_change_does_not_store_the_old_route(
    promoted: Promoted, tmp_path: Path
) -> None:
    router = Router(make_sessionmaker(promoted.live.world.stack.engine), ttl_seconds=60)
    seen = Seen(router.invalidate)
    listener = RouteListener(promoted.settings(tmp_path), seen)
    original = router._lookup
    read, release = threading.Event(), threading.Event()
    calls = [0]

    def slow_first(*args: Any) -> Any:
        calls[0] += 1
        outcome = original(*args)
        if calls[0] == 1:  # the first lookup read v1, then stalls past the change
            read.set()
            release.wait(10)
        return outcome

    router._lookup = slow_first  # type: ignore[method-assign]
    key = (promoted.tenant, "support")

    async def main() -> None:
        listener.start()
        assert await asyncio.to_thread(listener.connected.wait, 10)
        await seen.after(0)
        early = asyncio.create_task(router.route(promoted.tenant, "support"))
        assert await asyncio.to_thread(read.wait, 10)
        n = len(seen.calls)
        await asyncio.to_thread(promoted.move, 2)
        await seen.after(n)
        # A request after the change does not join the stale lookup: it reads v2.
        assert (await router.route(promoted.tenant, "support")).version == 2
        release.set()
        assert (await early).version == 1  # it asked before the change
        cached = router._memo.peek(key)
        assert cached is not None and not isinstance(cached, Exception)
        assert cached.version == 2  # the late, stale result was not stored over it
        router.invalidate(None)
        assert router._memo.peek(key) is None

    try:
        asyncio.run(main())
    finally:
        listener.stop()


def test_the_cache_drops_matching_keys_and_never_stores_a_load_it_outlived() -> None:
    memo: TTLMemo[tuple[str, str], str] = TTLMemo(maxsize=100, ttl=60)

    async def main() -> None:
        for key in (("a", "x"), ("a", "y"), ("b", "x")):
            await memo.get(key, lambda k=key: _value(f"{k[0]}{k[1]}-old"))
        assert memo.drop(lambda k: k[0] == "a") == 2
        assert memo.peek(("b", "x")) == "bx-old" and memo.peek(("a", "x")) is None
        gate = asyncio.Event()

        async def stalled() -> str:
            await gate.wait()
            return "stale"

        first = asyncio.create_task(memo.get(("a", "x"), stalled))
        unrelated = asyncio.create_task(memo.get(("b", "z"), stalled))
        await asyncio.sleep(0)
        memo.drop(lambda k: k[0] == "a")
        assert await memo.get(("a", "x"), lambda: _value("fresh")) == "fresh"  # own load
        gate.set()
        assert await first == "stale" and await unrelated == "stale"
        assert memo.peek(("a", "x")) == "fresh"  # not overwritten by the stale load
        assert memo.peek(("b", "z")) == "stale"  # the drop did not match it: stored
        memo.drop()
        assert len(memo) == 0

    asyncio.run(main())


async def _value(v: str) -> str:
    return v


def test_the_gateway_listens_from_its_lifespan(promoted: Promoted, tmp_path: Path) -> None:
    registry = promoted.live.world.stack.app.state.settings
    settings = promoted.settings(
        tmp_path,
        jwt_private_key_file=registry.resolved_jwt_key_file,
        engine_url="http://127.0.0.1:9",  # nothing listens: the route is cached all the same
        engine_api_key=SecretStr("k"),
        gateway_resolve_ttl_seconds=1.0,
        usage_flush_seconds=3600,
    )
    app = create_gateway(settings)
    body = {"model": "support", "messages": [{"role": "user", "content": "hi"}]}
    key = (promoted.tenant, "support")
    try:
        with TestClient(app) as http:
            assert app.state.route_listener.connected.wait(10)
            http.post("/v1/chat/completions", json=body, headers=promoted.aw.acme.headers)
            route = app.state.router._memo.peek(key)
            assert route is not None and route.version == 1
            started, _ = promoted.move(2)
            while app.state.router._memo.peek(key) is not None:
                assert time.perf_counter() - started < 0.5, "the route was not dropped"
                time.sleep(0.001)
    finally:
        app.state.db.dispose()
