"""The engine guard (`serving/engine_guard.py`) in front of a small ASGI app: HTTP and WebSocket
scopes both need the engine key; probes stay open; lifespan passes through."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from serving.engine_guard import RequireEngineKey

KEY = "engine-test-key"


async def hello(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def socket(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text("hello")
    await ws.close()


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("VLLM_API_KEY", KEY)
    app = Starlette(
        routes=[
            Route("/v1/models", hello),
            Route("/health", hello),
            WebSocketRoute("/v1/realtime", socket),
        ]
    )
    app.add_middleware(RequireEngineKey)
    return TestClient(app)


def test_http_needs_the_key_except_probes(client: TestClient) -> None:
    assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).text == "hello"
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}])
def test_a_websocket_without_the_key_is_closed_with_1008(
    client: TestClient, headers: dict[str, str]
) -> None:
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/v1/realtime", headers=headers) as ws,
    ):
        ws.receive_text()
    assert closed.value.code == 1008


def test_a_websocket_with_the_key_is_served(client: TestClient) -> None:
    with client.websocket_connect("/v1/realtime", headers={"Authorization": f"Bearer {KEY}"}) as ws:
        assert ws.receive_text() == "hello"


def test_the_guard_refuses_to_start_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    with pytest.raises(RuntimeError, match="VLLM_API_KEY"):
        RequireEngineKey(Starlette())
