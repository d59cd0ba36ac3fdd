"""The two audit calls the audit tests make over HTTP."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from tests.conftest import Stack, World


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


def restart_seq(stack: Stack) -> None:
    """PostgreSQL tests roll their data back, but a sequence does not go back: restart the
    global `seq` after the highest one present, so each test's events are numbered from 1."""
    if stack.kind != "postgres":
        return
    with stack.engine.begin() as conn:
        conn.execute(
            text(
                "SELECT setval('audit_events_seq', "
                "COALESCE((SELECT max(seq) FROM audit_events), 0) + 1, false)"
            )
        )
