"""The two audit calls the audit tests make over HTTP."""

from __future__ import annotations

from typing import Any

from tests.conftest import World


def verify(world: World) -> dict[str, Any]:
    resp = world.http.get("/v1/audit/verify", headers=world.auditor.headers)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def anchor(world: World) -> dict[str, Any]:
    resp = world.http.post("/v1/audit/anchors", headers=world.ops.headers)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body
