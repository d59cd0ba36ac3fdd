"""/v1/teachers: ops register teachers; tenants and auditors read them (no secret names)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import World

TEACHER = {"name": "big", "base_url": "https://teacher.example/v1/", "model": "big-model"}


def _audit(world: World, action: str) -> list[dict[str, Any]]:
    items = world.http.get("/v1/audit/events", headers=world.ops.headers).json()["items"]
    return [e for e in items if e["action"] == action]


@pytest.mark.smoke
def test_add_read_update_and_delete(world: World) -> None:
    ops = world.ops.headers
    resp = world.http.post("/v1/teachers", json={**TEACHER, "secret_name": "BIG_KEY"}, headers=ops)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["base_url"] == "https://teacher.example/v1"  # trailing slash dropped
    assert (body["requests_per_minute"], body["timeout_seconds"], body["max_retries"]) == (
        60,
        30.0,
        3,
    )
    assert (body["max_requests"], body["max_tokens"], body["enabled"]) == (1000, 256, True)
    assert body["secret_name"] == "BIG_KEY"
    assert world.http.post("/v1/teachers", json=TEACHER, headers=ops).status_code == 409

    acme = world.tenant("acme")
    seen = world.http.get("/v1/teachers/big", headers=acme.headers).json()
    assert seen["secret_name"] is None and seen["model"] == "big-model"
    listed = world.http.get("/v1/teachers", headers=world.auditor.headers).json()["items"]
    assert [t["name"] for t in listed] == ["big"] and listed[0]["secret_name"] == "BIG_KEY"

    resp = world.http.patch(
        "/v1/teachers/big", json={"enabled": False, "max_tokens": 64}, headers=ops
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["enabled"] is False and resp.json()["max_tokens"] == 64
    assert resp.json()["secret_name"] == "BIG_KEY"  # not named: unchanged
    resp = world.http.patch("/v1/teachers/big", json={"secret_name": None}, headers=ops)
    assert resp.json()["secret_name"] is None
    changes = [e["details"]["changed"] for e in _audit(world, "teacher.update")]
    assert {"secret_name": {"from": "BIG_KEY", "to": None}} in changes

    assert world.http.delete("/v1/teachers/big", headers=ops).status_code == 204
    assert world.http.get("/v1/teachers/big", headers=ops).status_code == 404
    assert [len(_audit(world, a)) for a in ("teacher.create", "teacher.delete")] == [1, 1]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"base_url": "ftp://x.example/v1"}, "http:// or https://"),
        ({"base_url": "https://x.example/v1/chat/completions"}, "ends before /chat/completions"),
        ({"base_url": "https://user:pw@x.example/v1"}, "credentials"),
        ({"secret_name": "../etc/passwd"}, "secret_name"),
        ({"name": "Big Teacher"}, "name"),
        ({"requests_per_minute": 0}, "requests_per_minute"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"max_retries": 11}, "max_retries"),
        ({"api_key": "sk-123"}, "api_key"),  # the key itself is never taken
    ],
)
def test_bad_teachers_are_422(world: World, change: dict[str, Any], needle: str) -> None:
    resp = world.http.post("/v1/teachers", json={**TEACHER, **change}, headers=world.ops.headers)
    assert resp.status_code == 422 and needle in resp.text, resp.text
    assert world.http.get("/v1/teachers", headers=world.ops.headers).json()["items"] == []


def test_only_ops_write(world: World) -> None:
    acme = world.tenant("acme")
    for headers in (acme.headers, world.auditor.headers):
        assert world.http.post("/v1/teachers", json=TEACHER, headers=headers).status_code == 403
    assert world.http.post("/v1/teachers", json=TEACHER, headers=world.ops.headers).is_success
    for headers in (acme.headers, world.auditor.headers):
        assert world.http.patch("/v1/teachers/big", json={}, headers=headers).status_code == 403
        assert world.http.delete("/v1/teachers/big", headers=headers).status_code == 403
    assert world.http.get("/v1/teachers/nope", headers=acme.headers).status_code == 404
