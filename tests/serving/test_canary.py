"""Traffic splits at the gateway, in-process on the real database (PostgreSQL) with a fake engine
at the HTTP boundary: a 90/10 split over 1,000 distinct end users, stickiness, the forms that
bypass the split, the usage records of the served version, and the cache (TTL, invalidation)."""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select

from registry.models import AdapterVersion, UsageRecord
from registry.settings import Settings
from serving.gateway.app import create_gateway, use_sessions
from serving.gateway.canary import Arm, Splits, bucket, choose, end_user
from tests.conftest import World
from tests.registry.splits.conftest import SPLIT, SplitWorld
from tests.serving.fake_engine import attach, stop_all

TENTH = {"production": 90, "candidate": 10}


@pytest.fixture
def sw(world: World, tmp_path: Path) -> SplitWorld:
    return SplitWorld(world, tmp_path / "tiny-base")


@pytest.fixture
def gateway(world: World, tmp_path: Path) -> Iterator[FastAPI]:
    registry = world.stack.app
    settings = Settings(
        home=tmp_path / "gw-home",
        database_url=registry.state.settings.resolved_database_url,
        jwt_private_key_file=registry.state.settings.resolved_jwt_key_file,
        engine_url="http://127.0.0.1:9",
        engine_api_key=SecretStr("k"),
        usage_flush_seconds=3600,
        gateway_rate_limit_rps=100_000,
        gateway_rate_limit_burst=100_000,
    )
    app = create_gateway(settings)
    sessions = registry.state.sessionmaker  # the test's rolled-back transaction
    use_sessions(app, sessions)
    app.state.splits = Splits(sessions, ttl_seconds=60)  # only invalidation refreshes it here
    engine = FastAPI()

    @engine.post("/v1/chat/completions")
    async def complete(body: dict[str, Any]) -> dict[str, Any]:
        choice = {"index": 0, "message": {"role": "assistant", "content": "ok"}}
        usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        return {"id": "x", "object": "chat.completion", "choices": [choice], "usage": usage}

    attach(app, engine)
    yield app
    stop_all()
    app.state.db.dispose()


SERVED: collections.Counter[str] = collections.Counter()


def _served(
    http: TestClient,
    sw: SplitWorld,
    model: str = "support",
    user: str | None = None,
    **headers: str,
) -> str:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if user is not None:
        body["user"] = user
    r = http.post("/v1/chat/completions", json=body, headers={**sw.acme.headers, **headers})
    assert r.status_code == 200, r.text
    SERVED[r.headers["x-loraplex-model"]] += 1
    return r.headers["x-loraplex-model"]


def test_a_tenth_of_a_thousand_users_get_the_candidate_sticky(
    sw: SplitWorld, gateway: FastAPI, world: World
) -> None:
    assert sw.put(TENTH).status_code == 200
    http = TestClient(gateway)
    SERVED.clear()
    served = {f"user-{i}": _served(http, sw, user=f"user-{i}") for i in range(1000)}
    counts = collections.Counter(served.values())
    assert set(counts) == {"support@v1", "support@v2"}
    assert 70 <= counts["support@v2"] <= 130, counts  # 10 ± 3 %
    for user in list(served)[:60]:  # the same end user, the same version, every time
        assert _served(http, sw, user=user) == served[user]
        assert _served(http, sw, model="support@production", user=user) == served[user]
    on_candidate = next(u for u, v in served.items() if v == "support@v2")
    on_production = next(u for u, v in served.items() if v == "support@v1")
    # a version or another alias named outright bypasses the split
    assert _served(http, sw, model="support@v1", user=on_candidate) == "support@v1"
    assert _served(http, sw, model="support@candidate", user=on_production) == "support@v2"
    # the header keys the choice when the body names no user; else the calling client
    by_header = {_served(http, sw, **{"x-loraplex-user": on_candidate}) for _ in range(3)}
    assert by_header == {"support@v2"}
    assert len({_served(http, sw) for _ in range(5)}) == 1

    assert asyncio.run(gateway.state.usage.flush()) == SERVED.total()
    with world.stack.session() as s:  # usage names the version that answered
        rows = s.execute(
            select(AdapterVersion.version, func.count())
            .join(UsageRecord, UsageRecord.version_id == AdapterVersion.id)
            .group_by(AdapterVersion.version)
        ).all()
    assert {f"support@v{n}": c for n, c in rows} == dict(SERVED)


def test_clearing_the_split_reaches_the_gateway_on_invalidation(
    sw: SplitWorld, gateway: FastAPI
) -> None:
    assert sw.put({"production": 50, "candidate": 50}).status_code == 200
    http = TestClient(gateway)
    users = [f"u{i}" for i in range(40)]
    assert {_served(http, sw, user=u) for u in users} == {"support@v1", "support@v2"}
    assert sw.http.delete(SPLIT, headers=sw.acme.headers).status_code == 204
    # cached for the TTL (60 s here) ...
    assert {_served(http, sw, user=u) for u in users} == {"support@v1", "support@v2"}
    gateway.state.splits.invalidate(uuid.uuid4())  # another tenant's change: still cached
    assert {_served(http, sw, user=u) for u in users} == {"support@v1", "support@v2"}
    assert sw.acme.tenant_id is not None
    gateway.state.splits.invalidate(uuid.UUID(sw.acme.tenant_id))  # ... or until a push
    assert {_served(http, sw, user=u) for u in users} == {"support@v1"}


def test_a_split_no_longer_applies_once_production_moved(sw: SplitWorld, gateway: FastAPI) -> None:
    assert sw.put({"production": 50, "candidate": 50}).status_code == 200
    assert sw.set_alias("production", 3, "hotfix").status_code == 200
    gateway.state.router.invalidate(None)
    gateway.state.splits.invalidate(None)
    http = TestClient(gateway)
    assert {_served(http, sw, user=f"u{i}") for i in range(40)} == {"support@v3"}


def test_buckets_are_stable_and_weights_deal_them() -> None:
    adapter = uuid.UUID(int=7)
    assert bucket(adapter, "user:alice") == bucket(adapter, "user:alice")
    spread = collections.Counter(bucket(adapter, f"user:{i}") for i in range(10_000))
    assert set(spread) == set(range(100)) and max(spread.values()) < 160
    a, b = uuid.UUID(int=1), uuid.UUID(int=2)
    arms = (Arm(a, 1, 90), Arm(b, 2, 10))
    assert [choose(arms, i).version for i in (0, 89, 90, 99)] == [1, 1, 2, 2]
    assert end_user({"user": "x"}, {"x-loraplex-user": "y"}) == "user:x"
    assert end_user({}, {"x-loraplex-user": "y"}) == "user:y"
    assert end_user({"user": 5}, {"authorization": "Bearer nonsense"}) == "client:"
