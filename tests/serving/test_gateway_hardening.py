"""The gateway's limits on the real database and real tokens, no engine (a fake one answers at
the HTTP boundary where a response is needed): token cache vs `exp`, failed tokens kept apart,
failed auth limited per address, the body limit while it streams, generation limits, the token
budget, /metrics off the tenant port, /readyz without exception text."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from joserfc import jws, jwt
from pydantic import SecretStr
from sqlalchemy import update

import serving.gateway.auth as gateway_auth
from registry.models import OAuthClient
from registry.settings import Settings
from serving.gateway.app import create_gateway, use_sessions
from serving.gateway.auth import Caller, GatewayAuth
from serving.gateway.errors import GatewayError
from serving.gateway.ratelimit import RateLimiter
from tests.conftest import World
from tests.registry.adapters.conftest import AdapterWorld
from tests.serving.fake_engine import attach, stop_all

USAGE = {"prompt_tokens": 30, "completion_tokens": 50, "total_tokens": 80}


def _token_expiring_at(world: World, token: str, exp: int) -> str:
    """The same claims, signed by the registry's own key, with another `exp`."""
    claims = json.loads(jws.extract_compact(token.encode()).payload)
    keys = world.stack.app.state.signing_keys.private
    header = {"alg": "RS256", "typ": "at+jwt", "kid": keys.keys[0].kid}
    return jwt.encode(header, {**claims, "exp": exp}, keys)


def _revoke(world: World, client_id: str) -> None:
    with world.stack.session() as s:
        s.execute(
            update(OAuthClient)
            .where(OAuthClient.client_id == client_id)
            .values(revoked_at=dt.datetime.now(dt.UTC))
        )
        s.commit()


def _auth(world: World, ttl: float = 60.0) -> GatewayAuth:
    app = world.stack.app
    failures = RateLimiter(rate=1000.0, burst=1000)  # not what these tests look at
    return GatewayAuth(app.state.verifier, app.state.sessionmaker, ttl, failures=failures)


def _call(auth: GatewayAuth, token: str) -> Caller | GatewayError:
    try:
        return asyncio.run(auth.caller(f"Bearer {token}"))
    except GatewayError as exc:
        return exc


def test_a_cached_token_is_not_trusted_past_its_exp(world: World) -> None:
    acme = world.tenant("acme")
    auth = _auth(world)
    token = acme.headers["Authorization"][7:]
    # Expired 5 s ago: the verifier's leeway still accepts it, the cache must not keep it.
    expired = _token_expiring_at(world, token, int(time.time()) - 5)
    assert isinstance(_call(auth, expired), Caller)
    assert isinstance(_call(auth, token), Caller)  # valid for an hour: cached
    _revoke(world, acme.client_id)
    refused = _call(auth, expired)
    assert isinstance(refused, GatewayError) and refused.status == 401, refused
    assert isinstance(_call(auth, token), Caller)  # within the cache's ttl: still trusted


def test_garbage_tokens_do_not_evict_good_ones(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway_auth, "MAX_TOKENS", 4)
    acme = world.tenant("acme")
    auth = _auth(world)
    token = acme.headers["Authorization"][7:]
    assert isinstance(_call(auth, token), Caller)
    for i in range(50):
        assert _call(auth, f"garbage-{i}").status == 401  # type: ignore[union-attr]
    _revoke(world, acme.client_id)
    assert isinstance(_call(auth, token), Caller)  # still cached: garbage went elsewhere


@pytest.fixture
def gateway(world: World, tmp_path: Path) -> Iterator[Any]:
    """`make(**settings)`: a gateway app on the world's database and signing key."""
    apps: list[FastAPI] = []

    def make(**overrides: Any) -> FastAPI:
        registry = world.stack.app
        settings = Settings(
            home=tmp_path / "gw-home",
            database_url=registry.state.settings.resolved_database_url,
            jwt_private_key_file=registry.state.settings.resolved_jwt_key_file,
            engine_url="http://127.0.0.1:9",  # nothing listens: the engine is down
            engine_api_key=SecretStr("k"),
            usage_flush_seconds=3600,
            **overrides,
        )
        app = create_gateway(settings)
        sessions = registry.state.sessionmaker  # the test's rolled-back transaction
        use_sessions(app, sessions)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.state.db.dispose()
    stop_all()


def _fake_engine(app: FastAPI, seen: list[dict[str, Any]]) -> None:
    """The engine's HTTP API, at the boundary: records bodies, answers with fixed usage."""
    engine = FastAPI()

    @engine.post("/v1/completions")
    @engine.post("/v1/chat/completions")
    async def complete(body: dict[str, Any]) -> dict[str, Any]:
        seen.append(body)
        return {"id": "x", "object": "text_completion", "choices": [], "usage": USAGE}

    attach(app, engine)


def _adapter(world: World, tmp_path: Path) -> dict[str, str]:
    aw = AdapterWorld(world, tmp_path / "tiny-base")
    assert aw.upload().status_code == 201
    assert aw.set_alias("production", 1).status_code == 200
    return aw.acme.headers


def test_failed_auth_is_rate_limited_per_address(gateway: Any) -> None:
    app = gateway(gateway_auth_failure_rps=0.01, gateway_auth_failure_burst=3)
    http = TestClient(app)
    body = {"model": "support", "prompt": "hi"}
    bad = {"Authorization": "Bearer not-a-jwt"}
    codes = [http.post("/v1/completions", json=body, headers=bad).status_code for _ in range(3)]
    assert codes == [401, 401, 401]
    for headers in (bad, {}, {"Authorization": f"Bearer other-{uuid.uuid4()}"}):
        r = http.post("/v1/completions", json=body, headers=headers)
        assert r.status_code == 429, r.text
        assert r.json()["error"]["type"] == "rate_limit_error"
        assert int(r.headers["retry-after"]) >= 60
    other = TestClient(app, client=("10.0.0.2", 1234))  # another address: its own bucket
    assert other.post("/v1/completions", json=body, headers=bad).status_code == 401


class _Sent:
    """An ASGI receive that streams `total` bytes in chunks and counts what it handed out."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
        self.total, self.chunk, self.sent = total, chunk, 0

    async def __call__(self) -> dict[str, Any]:
        n = min(self.chunk, self.total - self.sent)
        self.sent += n
        return {"type": "http.request", "body": b"x" * n, "more_body": self.sent < self.total}


def test_the_body_limit_holds_while_a_chunked_body_streams_in(
    world: World, tmp_path: Path, gateway: Any
) -> None:
    headers = _adapter(world, tmp_path)
    app = gateway()
    receive = _Sent(96 * 1024 * 1024)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": "/v1/completions",
        "raw_path": b"/v1/completions",
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
        "headers": [
            (b"authorization", headers["Authorization"].encode()),
            (b"transfer-encoding", b"chunked"),
            (b"content-type", b"application/json"),
        ],
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413
    error = json.loads(sent[1]["body"])["error"]
    assert error["type"] == "invalid_request_error" and "4194304 bytes" in error["message"]
    assert receive.sent <= 4 * 1024 * 1024 + 64 * 1024  # stopped reading at the limit


@pytest.mark.parametrize(
    ("field", "value", "limit"),
    [
        ("max_tokens", 101, 100),
        ("max_completion_tokens", 101, 100),
        ("n", 3, 2),
        ("best_of", 3, 2),
        ("max_tokens", 0, 100),
        ("n", "2", 2),
    ],
)
def test_generation_limits_are_400_naming_the_field(
    world: World, tmp_path: Path, gateway: Any, field: str, value: object, limit: int
) -> None:
    headers = _adapter(world, tmp_path)
    app = gateway(gateway_max_tokens=100, gateway_max_n=2)
    seen: list[dict[str, Any]] = []
    _fake_engine(app, seen)
    body = {"model": "support", "messages": [{"role": "user", "content": "hi"}], field: value}
    r = TestClient(app).post("/v1/chat/completions", json=body, headers=headers)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == field and f"'{field}'" in error["message"]
    assert str(limit) in error["message"] and seen == []


def test_a_default_max_tokens_is_set_when_the_engine_would_generate_to_the_end(
    world: World, tmp_path: Path, gateway: Any
) -> None:
    headers = _adapter(world, tmp_path)
    app = gateway(gateway_default_max_tokens=64)
    seen: list[dict[str, Any]] = []
    _fake_engine(app, seen)
    http = TestClient(app)
    chat = {"model": "support", "messages": [{"role": "user", "content": "hi"}]}
    assert http.post("/v1/chat/completions", json=chat, headers=headers).status_code == 200
    assert seen[-1]["max_tokens"] == 64
    asked = {**chat, "max_completion_tokens": 9}
    assert http.post("/v1/chat/completions", json=asked, headers=headers).status_code == 200
    assert "max_tokens" not in seen[-1] and seen[-1]["max_completion_tokens"] == 9
    null = {"model": "support", "prompt": "hi", "max_tokens": None}
    assert http.post("/v1/completions", json=null, headers=headers).status_code == 200
    assert seen[-1]["max_tokens"] == 64


def test_the_token_budget_is_per_tenant_and_charged_with_usage(
    world: World, tmp_path: Path, gateway: Any
) -> None:
    headers = _adapter(world, tmp_path)
    app = gateway(gateway_tokens_per_minute=120)
    seen: list[dict[str, Any]] = []
    _fake_engine(app, seen)
    http = TestClient(app)
    body = {"model": "support", "prompt": "hi", "max_tokens": 30}
    assert http.post("/v1/completions", json=body, headers=headers).status_code == 200
    # 80 of 120 used: 40 left, enough for 30 more up front
    assert http.post("/v1/completions", json=body, headers=headers).status_code == 200
    r = http.post("/v1/completions", json=body, headers=headers)
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "tokens_exceeded"
    assert int(r.headers["retry-after"]) >= 10
    assert len(seen) == 2


def test_metrics_are_not_on_the_tenant_port(world: World, tmp_path: Path, gateway: Any) -> None:
    from tests.services import free_port

    port = free_port()
    app = gateway(gateway_metrics_port=port)
    with TestClient(app) as http:
        assert http.get("/metrics").status_code == 404
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", trust_env=False).text
        assert "loraplex_gateway_overhead_seconds" in text
    with pytest.raises(httpx.TransportError):  # closed with the app
        httpx.get(f"http://127.0.0.1:{port}/metrics", trust_env=False, timeout=2)


def test_readyz_names_the_dependency_that_is_down_without_exception_text(
    gateway: Any,
) -> None:
    r = TestClient(gateway()).get("/readyz")
    assert r.status_code == 503
    assert r.json() == {"status": "not ready", "checks": {"database": True, "engine": False}}


def test_buckets_are_bounded_and_a_debt_is_waited_out() -> None:
    now = [0.0]
    budget = RateLimiter(rate=1.0, burst=60, clock=lambda: now[0], max_keys=2)
    assert budget.take("a", 50) == 0.0
    budget.give("a", 50 - 100)  # reserved 50, the response used 100: 40 in debt
    assert budget.take("a", 10) == pytest.approx(50.0)
    assert budget.take("a", 1000) == pytest.approx(100.0)  # above the burst: a full bucket
    for key in "bcd":
        budget.take(key)
    assert len(budget._buckets) == 2
