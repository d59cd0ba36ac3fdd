"""Request body limits hold while the body streams in, before parsing and before authentication:
an oversized body is refused with 413 after at most limit + one chunk has been read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
import starlette.formparsers
from fastapi import FastAPI
from starlette.routing import Route

from registry.bodylimit import route_limits
from tests.conftest import Stack, World

CHUNK = 64 << 10
BIG = 64 << 20  # 64 MiB


class Upload:
    """An ASGI receive that hands out `total` bytes in chunks and counts what was taken."""

    def __init__(self, total: int, first: bytes = b'{"slug": "') -> None:
        self.total, self.first, self.taken = total, first, 0

    async def __call__(self) -> dict[str, Any]:
        if self.taken >= self.total:
            await asyncio.sleep(3600)  # the client waits for the answer
        body = self.first if self.taken == 0 else b"x" * min(CHUNK, self.total - self.taken)
        self.taken += len(body)
        return {"type": "http.request", "body": body, "more_body": self.taken < self.total}


def call(
    app: FastAPI, method: str, path: str, receive: Upload, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """Drive the app over ASGI, as a server would: no client library reading the body first."""
    out: dict[str, Any] = {"body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 443),
        "state": {},
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=60))
    return out["status"], json.loads(out["body"])


def limit_of(stack: Stack) -> int:
    limit: int = stack.app.state.settings.max_json_body_bytes
    return limit


@pytest.mark.parametrize("authorized", [False, True], ids=["no token", "ops token"])
def test_a_64_mib_json_body_streamed_without_length_is_413_after_the_limit(
    world: World, authorized: bool
) -> None:
    headers = {"content-type": "application/json", **(world.ops.headers if authorized else {})}
    upload = Upload(BIG)
    status, body = call(world.stack.app, "POST", "/v1/tenants", upload, headers)
    assert status == 413, body
    assert body["error"] == "PayloadTooLarge" and "1 MiB" in body["detail"]
    assert upload.taken <= limit_of(world.stack) + CHUNK


@pytest.mark.parametrize("authorized", [False, True], ids=["no token", "ops token"])
def test_a_declared_64_mib_body_is_413_before_a_byte_is_read(
    world: World, authorized: bool
) -> None:
    headers = {
        "content-type": "application/json",
        "content-length": str(BIG),
        **(world.ops.headers if authorized else {}),
    }
    upload = Upload(BIG)
    status, body = call(world.stack.app, "POST", "/v1/tenants", upload, headers)
    assert status == 413 and body["error"] == "PayloadTooLarge", body
    assert "67,108,864 bytes" in body["detail"]
    assert upload.taken == 0


def test_a_chunked_body_over_the_limit_through_a_client_is_413(world: World) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"slug": "big", "display_name": "'
        for _ in range(2):
            yield b"x" * (1 << 20)
        yield b'"}'

    resp = world.http.post("/v1/tenants", content=chunks(), headers=world.ops.headers)
    assert "content-length" not in {k.lower() for k in resp.request.headers}
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"] == "PayloadTooLarge"
    assert world.http.get("/v1/tenants/big", headers=world.ops.headers).status_code == 404


@pytest.fixture
def spooled(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every temporary file starlette's form parser creates for a file part."""
    made: list[object] = []
    real: Callable[..., Any] = starlette.formparsers.SpooledTemporaryFile

    def record(*args: Any, **kwargs: Any) -> Any:
        made.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(starlette.formparsers, "SpooledTemporaryFile", record)
    return made


def test_the_token_endpoint_refuses_multipart_without_spooling_it(
    world: World, spooled: list[object]
) -> None:
    acme = world.tenant("acme")
    resp = world.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        files={"junk": ("junk.bin", b"x" * 2000)},
        auth=(acme.client_id, acme.secret),
    )
    assert resp.status_code == 415, resp.text
    assert resp.json()["error"] == "UnsupportedMediaType"
    assert "application/x-www-form-urlencoded" in resp.json()["detail"]
    assert spooled == []


def test_the_token_endpoint_refuses_a_large_body_while_it_streams(world: World) -> None:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    upload = Upload(BIG, first=b"grant_type=client_credentials&pad=")
    status, body = call(world.stack.app, "POST", "/oauth/token", upload, headers)
    assert status == 413 and body["error"] == "PayloadTooLarge", body
    assert upload.taken <= world.stack.app.state.settings.max_token_body_bytes + CHUNK


def test_every_route_with_its_own_limit_exists(world: World) -> None:
    """A renamed route would silently fall back to the JSON default (or lose its exemption)."""
    app = world.stack.app
    routes = {
        (method, route.path)
        for route in app.router.routes
        if isinstance(route, Route)
        for method in route.methods or ()
    }
    missing = set(route_limits(app.state.settings)) - routes
    assert not missing
