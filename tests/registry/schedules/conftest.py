"""Fixture `sw`: JobWorld (tenant acme, adapter 'support', dataset 'chat') plus schedule helpers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from registry.db import run_unit_of_work
from registry.schedules.schemas import TickOut
from registry.schedules.tick import tick
from tests.conftest import Caller, World
from tests.registry.training.conftest import JobWorld

# starlette's TestClient answers with httpx or httpx2 responses, whichever is installed
Response = Any


def when(value: str) -> dt.datetime:
    """A UTC time from the API's JSON ('...Z') or from an isoformat() ('...+00:00')."""
    parsed = dt.datetime.fromisoformat(value)
    assert parsed.utcoffset() == dt.timedelta(0), value
    return parsed


class ScheduleWorld(JobWorld):
    def url(self, adapter: str = "support", tenant: str = "acme") -> str:
        return f"/v1/tenants/{tenant}/adapters/{adapter}/schedule"

    def put(
        self, cron: str = "0 3 * * *", adapter: str = "support", tenant: str = "acme", **body: Any
    ) -> Response:
        return self.http.put(
            self.url(adapter, tenant), json={"cron": cron, **body}, headers=self.world.ops.headers
        )

    def set(self, cron: str = "0 3 * * *", **body: Any) -> dict[str, Any]:
        resp = self.put(cron, **body)
        assert resp.status_code == 200, resp.text
        out: dict[str, Any] = resp.json()
        return out

    def get(self, adapter: str = "support", tenant: str = "acme", headers=None) -> Response:  # type: ignore[no-untyped-def]
        return self.http.get(self.url(adapter, tenant), headers=headers or self.acme.headers)

    def schedule(self) -> dict[str, Any]:
        resp = self.get()
        assert resp.status_code == 200, resp.text
        out: dict[str, Any] = resp.json()
        return out

    def tick(self, now: dt.datetime) -> TickOut:
        stack = self.world.stack
        for session in run_unit_of_work(stack.app.state.sessionmaker):
            out = tick(session, now=now, settings=stack.app.state.settings, queue=stack.tasks)
        return out

    def jobs(self, tenant: str = "acme", headers=None) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
        resp = self.http.get(
            f"/v1/tenants/{tenant}/training-jobs", headers=headers or self.acme.headers
        )
        assert resp.status_code == 200, resp.text
        items: list[dict[str, Any]] = resp.json()["items"]
        return items

    def versions(self, adapter: str = "support", tenant: str = "acme", headers=None) -> list[dict]:  # type: ignore[no-untyped-def]
        resp = self.http.get(
            f"/v1/tenants/{tenant}/adapters/{adapter}/versions",
            headers=headers or self.acme.headers,
        )
        assert resp.status_code == 200, resp.text
        items: list[dict[str, Any]] = resp.json()["items"]
        return items

    def add_adapter(self, caller: Caller, name: str) -> None:
        resp = self.http.post(
            f"/v1/tenants/{caller.slug}/adapters",
            headers=caller.headers,
            json={
                "name": name,
                "base_model": "tiny",
                "training": {"rank": 4, "target_modules": ["q_proj", "v_proj"]},
            },
        )
        assert resp.status_code == 201, resp.text

    def audit(self, action: str) -> list[dict[str, Any]]:
        resp = self.http.get(
            "/v1/audit/events", params={"action": action}, headers=self.world.ops.headers
        )
        assert resp.status_code == 200, resp.text
        items: list[dict[str, Any]] = resp.json()["items"]
        return items


@pytest.fixture
def sw(world: World, tmp_path: Path) -> ScheduleWorld:
    return ScheduleWorld(world, tmp_path / "tiny-base")
