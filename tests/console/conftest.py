"""Console test helpers: a browser-like client signed in through the sign-in form."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from registry.console.session import COOKIE, LOGIN_COOKIE, csrf_for
from tests.conftest import Caller, World


class ConsoleClient:
    """A TestClient with the console's cookies; `post` adds this session's CSRF field."""

    def __init__(self, world: World, caller: Caller | None) -> None:
        self.http = TestClient(world.stack.app, base_url="https://testserver")
        if caller is not None:
            sign_in(self.http, caller.client_id, caller.secret)

    @property
    def csrf(self) -> str:
        return csrf_for(self.http.cookies.get(COOKIE) or "")

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, data: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        kw.setdefault("follow_redirects", False)
        return self.http.post(path, data={"csrf": self.csrf, **(data or {})}, **kw)


def sign_in(http: TestClient, client_id: str, secret: str) -> httpx.Response:
    http.get("/console/login")
    resp = http.post(
        "/console/login",
        data={
            "client_id": client_id,
            "client_secret": secret,
            "csrf": http.cookies.get(LOGIN_COOKIE) or "",
            "next": "/console",
        },
        follow_redirects=False,
    )
    assert resp.status_code == 303, resp.text
    return resp


@pytest.fixture
def console(world: World) -> Any:
    """console(caller) -> a ConsoleClient signed in as `caller` (None: not signed in)."""
    return lambda caller: ConsoleClient(world, caller)
