from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db import run_unit_of_work
from registry.models import AdapterVersion, UsageRecord
from tests.conftest import World
from tests.registry.adapters.conftest import AdapterWorld

SPLIT = "/v1/tenants/acme/adapters/support/traffic-split"


class SplitWorld(AdapterWorld):
    """acme's `support` with ready v1 (production), v2 (candidate) and v3 (no alias)."""

    def __init__(self, world: World, base_dir: Path) -> None:
        super().__init__(world, base_dir)
        for _ in range(3):
            assert self.upload().status_code == 201
        assert self.set_alias("production", 1, "first").status_code == 200
        assert self.set_alias("candidate", 2, "trained").status_code == 200

    def put(self, weights: dict[str, int], **more: Any) -> httpx.Response:
        body = {"weights": weights, "reason": "try v2 on a tenth", **more}
        return self.http.put(SPLIT, json=body, headers=self.acme.headers)

    def get(self, path: str = "") -> Any:
        resp = self.http.get(SPLIT + path, headers=self.acme.headers)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def version_id(self, number: int) -> uuid.UUID:
        with self.world.stack.session() as s:
            vid = s.scalar(select(AdapterVersion.id).where(AdapterVersion.version == number))
            assert vid is not None
            return vid

    def opener(self) -> Any:
        """What the periodic task opens a transaction with (here: the test's)."""

        @contextmanager
        def open_session() -> Iterator[Session]:
            yield from run_unit_of_work(self.world.stack.app.state.sessionmaker)

        return open_session

    def usage(self, number: int, ok: int, failed: int, ms: float = 100.0) -> None:
        """`ok` answers (200 in `ms`) and `failed` ones (502) of version `number`, just now."""
        vid = self.version_id(number)
        now = dt.datetime.now(dt.UTC)
        assert self.acme.tenant_id is not None
        with self.world.stack.session() as s:
            adapter_id = s.scalar(select(AdapterVersion.adapter_id).where(AdapterVersion.id == vid))
            for i in range(ok + failed):
                s.add(
                    UsageRecord(
                        tenant_id=uuid.UUID(self.acme.tenant_id),
                        adapter_id=adapter_id,
                        version_id=vid,
                        request_id=f"r-{number}-{i}-{uuid.uuid4().hex[:6]}",
                        client_id="c",
                        model="support",
                        endpoint="chat.completions",
                        stream=False,
                        status_code=200 if i < ok else 502,
                        latency_ms=ms,
                        started_at=now,
                    )
                )
            s.commit()


@pytest.fixture
def sw(world: World, tmp_path: Path) -> SplitWorld:
    return SplitWorld(world, tmp_path / "tiny-base")
