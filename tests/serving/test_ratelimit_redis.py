"""Per-tenant limits shared by gateway replicas through Redis (issue 19), on a real Redis: one
bucket for all replicas, debts shared, and Redis down -> per-process buckets, no failed request."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import SecretStr

from registry.settings import Settings
from serving.gateway import ratelimit_redis
from serving.gateway.app import create_gateway, use_sessions
from serving.gateway.ratelimit import LocalBuckets
from serving.gateway.ratelimit_redis import RedisBuckets, RedisLink, tenant_buckets
from tests.conftest import World, require_env
from tests.services import start_redis


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _replicas(url: str, rate: float, burst: int) -> tuple[RedisBuckets, RedisBuckets]:
    """Two gateways' buckets: a Redis client each, as two processes would have."""
    return (
        RedisBuckets(RedisLink(url), "requests", rate, burst),
        RedisBuckets(RedisLink(url), "requests", rate, burst),
    )


def test_two_replicas_share_one_bucket() -> None:
    a, b = _replicas(require_env("LORAPLEX_TEST_REDIS_URL"), rate=0.001, burst=10)
    tenant, other = uuid.uuid4().hex, uuid.uuid4().hex

    async def main() -> tuple[list[float], float]:
        waits = [await (a if i % 2 else b).take(tenant) for i in range(30)]
        return waits, await a.take(other)

    waits, elsewhere = asyncio.run(main())
    assert [w == 0.0 for w in waits] == [True] * 10 + [False] * 20  # 10 in all, not 20
    assert all(w > 900 for w in waits[10:])  # about 1/rate: a token a 1000 s
    assert elsewhere == 0.0  # another tenant's bucket


def test_a_debt_run_up_on_one_replica_is_waited_out_on_the_other() -> None:
    a, b = _replicas(require_env("LORAPLEX_TEST_REDIS_URL"), rate=1.0, burst=60)
    a.name = b.name = "tokens"
    key = uuid.uuid4().hex

    async def main() -> list[float]:
        out = [await a.take(key, 50)]
        await a.give(key, 50 - 100)  # reserved 50, the response used 100: 40 in debt
        out.append(await b.take(key, 10))  # (10 + 40) / 1
        out.append(await b.take(key, 1000))  # above the burst: a full bucket, (60 + 40) / 1
        a.settle(key, 40)  # the way the gateway settles: without waiting...
        await a.close()  # ...done by the time the replica shuts down
        out.append(await b.take(key, 10))
        await b.close()
        return out

    taken, debt, full, settled = asyncio.run(main())
    assert taken == 0.0
    assert debt == pytest.approx(50.0, abs=0.2)
    assert full == pytest.approx(100.0, abs=0.2)
    assert settled == pytest.approx(10.0, abs=0.2)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def warning(self, event: str, **_: Any) -> None:
        self.events.append(("warning", event))

    def info(self, event: str, **_: Any) -> None:
        self.events.append(("info", event))


def test_redis_down_falls_back_to_this_process_and_comes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = start_redis()
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    logged = Recorder()
    monkeypatch.setattr(ratelimit_redis, "log", logged)
    link = RedisLink(server.url, retry_s=0.05)
    buckets = RedisBuckets(link, "requests", rate=0.001, burst=3)
    key = uuid.uuid4().hex
    outages = _sample("loraplex_gateway_ratelimit_redis_outages_total")
    fallback = _sample("loraplex_gateway_ratelimit_fallback_total", bucket="requests")
    direct = redis.Redis.from_url(server.url)
    bucket_key = f"{ratelimit_redis.PREFIX}:requests:{key}"
    servers = [server]

    async def main() -> None:
        assert await buckets.take(key) == 0.0 and direct.exists(bucket_key)
        servers[0].stop()
        answers = []
        for _ in range(6):
            t0 = time.perf_counter()
            answers.append((await buckets.take(key), time.perf_counter() - t0))
            await asyncio.sleep(0.03)  # the link tries Redis again now and then
        # Decided by this process's own (full) bucket: never an error, never slow.
        assert [w == 0.0 for w, _ in answers] == [True] * 3 + [False] * 3
        assert max(s for _, s in answers) < 0.3
        assert _sample("loraplex_gateway_ratelimit_redis_outages_total") == outages + 1
        assert _sample("loraplex_gateway_ratelimit_fallback_total", bucket="requests") == (
            fallback + 6
        )
        assert logged.events == [("warning", "gateway.ratelimit.redis_unreachable")]
        servers[0] = start_redis(port)
        await asyncio.sleep(0.06)
        assert await buckets.take(key) == 0.0  # on Redis again: its bucket is new and full
        assert direct.exists(bucket_key)
        assert logged.events[-1] == ("info", "gateway.ratelimit.redis_back")
        await buckets.close()

    try:
        asyncio.run(main())
    finally:
        direct.close()
        servers[0].stop()


def test_the_redis_url_defaults_to_a_redis_broker_and_empty_turns_it_off(
    tmp_path: Path,
) -> None:
    def url(**kw: Any) -> str | None:
        return Settings(home=tmp_path, **kw).resolved_gateway_redis_url

    assert url() is None
    assert url(broker_url="redis://r:6379/0") == "redis://r:6379/0"
    assert url(broker_url="amqp://mq//") is None
    assert url(broker_url="redis://r/0", gateway_redis_url="redis://other/1") == "redis://other/1"
    assert url(broker_url="redis://r/0", gateway_redis_url="") is None
    local = tenant_buckets(Settings(home=tmp_path))
    assert all(isinstance(b, LocalBuckets) for b in local)
    shared = tenant_buckets(Settings(home=tmp_path, broker_url="redis://r/0"))
    assert all(isinstance(b, RedisBuckets) for b in shared)
    assert shared[0].link is shared[1].link  # type: ignore[attr-defined]


@pytest.fixture
def gateways(world: World, tmp_path: Path) -> Iterator[Any]:
    apps: list[FastAPI] = []

    def make(**overrides: Any) -> FastAPI:
        registry = world.stack.app.state.settings
        settings = Settings(
            home=tmp_path / "gw-home",
            database_url=registry.resolved_database_url,
            jwt_private_key_file=registry.resolved_jwt_key_file,
            engine_url="http://127.0.0.1:9",
            engine_api_key=SecretStr("k"),
            usage_flush_seconds=3600,
            **overrides,
        )
        app = create_gateway(settings)
        use_sessions(app, world.stack.app.state.sessionmaker)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.state.db.dispose()


def test_two_gateways_share_a_tenants_requests_and_go_on_without_redis(
    world: World, gateways: Any
) -> None:
    acme = world.tenant("acme")
    shared = {
        "gateway_redis_url": require_env("LORAPLEX_TEST_REDIS_URL"),
        "gateway_rate_limit_rps": 0.001,
        "gateway_rate_limit_burst": 3,
    }
    with TestClient(gateways(**shared)) as one, TestClient(gateways(**shared)) as two:
        codes = [c.get("/v1/models", headers=acme.headers).status_code for c in [one, two] * 3]
    assert codes == [200, 200, 200, 429, 429, 429]
    down = {**shared, "gateway_redis_url": "redis://127.0.0.1:9/0"}  # nothing listens
    with TestClient(gateways(**down)) as alone:
        codes = [alone.get("/v1/models", headers=acme.headers).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]  # this process's bucket: limited, never failed
