"""`POST /v1/feedback` at the gateway: on the real serving stack (a real chat answer, then
feedback on its x-request-id), and in-process on the real database with a fake engine at the HTTP
boundary, where the usage buffer is never flushed on its own: feedback right after an answer
must flush it to find the request. Errors are OpenAI-shaped; another tenant's request is 404."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from registry.models import Feedback, UsageRecord
from registry.settings import Settings
from serving.gateway.app import create_gateway, use_sessions
from tests.conftest import World
from tests.registry.traffic.test_feedback import Traffic
from tests.serving.fake_engine import attach, stop_all
from tests.serving.stack import ServingStack

CHAT = {"model": "support", "messages": [{"role": "user", "content": "Is my parcel late?"}]}
ANSWER = {"role": "assistant", "content": "It arrives tomorrow."}


# --- the real stack --------------------------------------------------------------------------


def test_feedback_on_a_real_chat_answer(serving: ServingStack) -> None:
    raw = serving.openai("acme").chat.completions.with_raw_response.create(
        model="orders",
        messages=[{"role": "user", "content": "Where is order 7?"}],
        max_tokens=4,
        temperature=0,
    )
    rid = raw.headers["x-request-id"]
    gw = httpx.Client(base_url=serving.gateway_url, trust_env=False, timeout=30)
    body = {"request_id": rid, "rating": -1, "correction": ANSWER, "comment": "wrong day"}
    r = gw.post("/v1/feedback", json=body, headers=serving.tokens["acme"])  # before any flush
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["adapter"], out["version"], out["rating"]) == ("orders", 1, -1)
    assert out["corrected"] is True and out["correction"] == [ANSWER]

    other = gw.post("/v1/feedback", json=body, headers=serving.tokens["globex"])
    assert other.status_code == 404, other.text
    error = other.json()["error"]
    assert error["code"] == "request_not_found" and error["param"] == "request_id"
    assert error["type"] == "invalid_request_error" and rid in error["message"]

    bad = gw.post("/v1/feedback", json={**body, "rating": 5}, headers=serving.tokens["acme"])
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "rating"
    assert "-1 (bad), 0 (neutral) or 1 (good)" in bad.json()["error"]["message"]

    listed = serving.ok(serving.http.get("/v1/tenants/acme/feedback",
                                         headers=serving.tokens["acme"]))  # fmt: skip
    mine = [f for f in listed["items"] if f["request_id"] == rid]
    assert len(mine) == 1 and mine[0]["comment"] == "wrong day"


# --- in-process, fake engine ------------------------------------------------------------------


@pytest.fixture
def gateway(world: World, tmp_path: Path) -> Iterator[Any]:
    """`make(**settings)`: a gateway on the world's database; its usage never flushes alone."""
    apps: list[FastAPI] = []

    def make(**overrides: Any) -> FastAPI:
        registry = world.stack.app
        settings = Settings(
            home=tmp_path / "gw-home",
            database_url=registry.state.settings.resolved_database_url,
            jwt_private_key_file=registry.state.settings.resolved_jwt_key_file,
            engine_url="http://127.0.0.1:9",
            engine_api_key=SecretStr("k"),
            usage_flush_seconds=3600,
            **overrides,
        )
        app = create_gateway(settings)
        sessions = registry.state.sessionmaker  # the test's rolled-back transaction
        use_sessions(app, sessions)
        _fake_engine(app)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.state.db.dispose()
    stop_all()


def _fake_engine(app: FastAPI) -> None:
    engine = FastAPI()

    @engine.post("/v1/chat/completions")
    async def complete(body: dict[str, Any]) -> dict[str, Any]:
        choice = {"index": 0, "message": ANSWER, "finish_reason": "stop"}
        usage = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
        return {"id": "x", "object": "chat.completion", "choices": [choice], "usage": usage}

    attach(app, engine)


@pytest.fixture
def traffic(world: World, tmp_path: Path) -> Traffic:
    traffic = Traffic(world, tmp_path / "tiny-base")
    for slug in ("acme", "globex"):
        r = traffic.http.put(
            f"/v1/tenants/{slug}/adapters/support/aliases/production",
            json={"version": 1, "reason": "test"},
            headers=traffic.headers[slug],
        )
        assert r.status_code == 200, r.text
    return traffic


def _answered(http: TestClient, traffic: Traffic, slug: str = "acme") -> str:
    r = http.post("/v1/chat/completions", json=CHAT, headers=traffic.headers[slug])
    assert r.status_code == 200, r.text
    return r.headers["x-request-id"]


def _usage_rows(world: World, rid: str) -> int:
    with world.stack.session() as s:
        return len(s.scalars(select(UsageRecord).where(UsageRecord.request_id == rid)).all())


def test_feedback_right_after_the_answer_flushes_usage_first(
    gateway: Any, traffic: Traffic, world: World
) -> None:
    http = TestClient(gateway())
    rid = _answered(http, traffic)
    assert _usage_rows(world, rid) == 0  # still in the gateway's buffer
    body = {"request_id": rid, "rating": 1, "correction": [ANSWER]}
    r = http.post("/v1/feedback", json=body, headers=traffic.headers["acme"])
    assert r.status_code == 201, r.text
    assert r.json()["adapter"] == "support" and r.json()["replaced"] is False
    assert _usage_rows(world, rid) == 1
    r = http.post("/v1/feedback", json={**body, "rating": 0}, headers=traffic.headers["acme"])
    assert r.status_code == 200 and r.json()["replaced"] is True and r.json()["rating"] == 0
    with world.stack.session() as s:
        rows = s.scalars(select(Feedback).where(Feedback.request_id == rid)).all()
        assert [(f.rating, f.created_by) for f in rows] == [(0, traffic.clients["acme"])]


def test_another_tenants_request_is_404_like_an_unknown_one(gateway: Any, traffic: Traffic) -> None:
    http = TestClient(gateway())
    theirs = _answered(http, traffic, "globex")
    r = http.post("/v1/feedback", json={"request_id": theirs, "rating": 1},
                  headers=traffic.headers["acme"])  # fmt: skip
    unknown = http.post("/v1/feedback", json={"request_id": "never-sent", "rating": 1},
                        headers=traffic.headers["acme"])  # fmt: skip
    assert r.status_code == unknown.status_code == 404
    a, b = r.json()["error"], unknown.json()["error"]
    assert a["message"].replace(theirs, "X") == b["message"].replace("never-sent", "X")
    assert (a["code"], a["param"], a["type"]) == (
        "request_not_found",
        "request_id",
        "invalid_request_error",
    )
    r = http.post("/v1/feedback", json={"request_id": theirs, "rating": 1},
                  headers=traffic.headers["globex"])  # fmt: skip
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("body", "param", "needle"),
    [
        ({"request_id": "r", "rating": "good"}, "rating", "got \"good\""),
        ({"request_id": "r"}, "rating", "'rating' is required"),
        ({"rating": 1}, "request_id", "'request_id' is required"),
        ({"request_id": "r", "rating": 1, "stars": 5}, "stars", "Unknown field 'stars'"),
        ({"request_id": "r", "rating": 1, "correction": {"role": "user", "content": "x"}},
         "correction", 'role "user" cannot be corrected'),
        ({"request_id": "r", "rating": 1, "correction": {"role": "assistant", "tool_calls": [
            {"type": "function", "function": {"name": "f", "arguments": "[]"}}]}},
         "correction", '"arguments" must be a JSON object'),
    ],
)  # fmt: skip
def test_bad_bodies_are_400_with_the_param(
    gateway: Any, traffic: Traffic, body: dict[str, Any], param: str, needle: str
) -> None:
    http = TestClient(gateway())
    r = http.post("/v1/feedback", json=body, headers=traffic.headers["acme"])
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert needle in error["message"], error["message"]


def test_limits_and_auth(gateway: Any, traffic: Traffic, world: World) -> None:
    http = TestClient(gateway(gateway_rate_limit_rps=0.01, gateway_rate_limit_burst=4))
    acme = traffic.headers["acme"]
    rid = _answered(http, traffic)  # 1 of 4
    r = http.post("/v1/feedback", content=b"{not json", headers=acme)  # 2
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    huge = {"request_id": rid, "rating": 1, "comment": "x" * (130 * 1024)}
    r = http.post("/v1/feedback", json=huge, headers=acme)  # 3
    assert r.status_code == 413 and r.json()["error"]["type"] == "invalid_request_error"
    assert http.post("/v1/feedback", json={"request_id": rid, "rating": 1},
                     headers=acme).status_code == 201  # 4  # fmt: skip
    r = http.post("/v1/feedback", json={"request_id": rid, "rating": 0}, headers=acme)
    assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
    assert int(r.headers["retry-after"]) >= 1
    r = http.post("/v1/feedback", json={"request_id": rid, "rating": 0}, headers=world.ops.headers)
    assert r.status_code == 403 and "tenant clients" in r.json()["error"]["message"]
    r = http.post("/v1/feedback", json={"request_id": rid, "rating": 0})
    assert r.status_code == 401
