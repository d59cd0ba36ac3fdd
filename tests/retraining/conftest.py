"""A registry on its own PostgreSQL database (not the rolled-back per-test transaction), so that
ticks and drift passes can run concurrently on separate connections, plus a worker context on
the same database and S3 prefix. Tasks are recorded, not run (real workers: tests/serving)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registry.adapters.repository import AdapterRepository, VersionRepository
from registry.app import create_app
from registry.db import run_unit_of_work
from registry.migrate import upgrade
from registry.tenants.repository import TenantRepository
from tests.conftest import Caller, RecordingQueue, Stack, World, create_database, pg_settings
from tests.lora_files import make_adapter, make_base_model
from workers.context import WorkerContext, build_context
from workers.devmodel.samples import sample_rows, to_jsonl


class Retraining:
    def __init__(self, world: World, ctx: WorkerContext) -> None:
        self.world, self.http, self.ctx = world, world.http, ctx
        self.tasks = world.stack.tasks
        self.ops = world.ops.headers
        self.tenants: dict[str, Caller] = {}

    def tenant(self, slug: str) -> Caller:
        if slug not in self.tenants:
            self.tenants[slug] = self.world.tenant(slug)
        return self.tenants[slug]

    @staticmethod
    def ok(resp: Any) -> Any:
        assert resp.status_code < 300, f"{resp.status_code}: {resp.text}"
        return resp.json() if resp.content else None

    def dataset(self, slug: str, name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return self.ok(
            self.http.post(
                f"/v1/tenants/{slug}/datasets",
                data={"name": name},
                files={"file": ("d.jsonl", to_jsonl(rows))},
                headers=self.tenant(slug).headers,
            )
        )

    def adapter(self, slug: str, name: str, trained_on: dict[str, Any] | None = None) -> None:
        """An adapter with v1 uploaded and in production. With `trained_on`, v1's lineage says
        it was trained on that dataset (as a training job would have recorded)."""
        h = self.tenant(slug).headers
        self.ok(
            self.http.post(
                f"/v1/tenants/{slug}/adapters",
                json={"name": name, "base_model": "tiny", "training": {"rank": 4}},
                headers=h,
            )
        )
        config, weights = make_adapter("tiny")
        files = {
            "adapter_config.json": ("adapter_config.json", config),
            "adapter_model.safetensors": ("adapter_model.safetensors", weights),
        }
        self.ok(
            self.http.post(f"/v1/tenants/{slug}/adapters/{name}/versions", files=files, headers=h)
        )
        self.ok(
            self.http.put(
                f"/v1/tenants/{slug}/adapters/{name}/aliases/production",
                json={"version": 1},
                headers=h,
            )
        )
        if trained_on is not None:
            for session in run_unit_of_work(self.ctx.sessions):
                tenant = TenantRepository(session).get_by_slug(slug)
                assert tenant is not None
                adapter = AdapterRepository(session, tenant.id).get_by_name(name)
                assert adapter is not None
                versions = VersionRepository(session, tenant.id)
                v1 = versions.get(adapter.id, 1)
                assert v1 is not None
                versions.link_dataset(v1.id, uuid.UUID(trained_on["id"]), "train")

    def traffic(self, slug: str, adapter: str, rows: list[dict[str, Any]]) -> None:
        """The prompts of `rows` (the assistant turns dropped), as an inference stack sends."""
        samples = [
            {"messages": [m for m in r["messages"] if m["role"] != "assistant"]} for r in rows
        ]
        for i in range(0, len(samples), 500):
            self.ok(
                self.http.post(
                    f"/v1/tenants/{slug}/traffic",
                    json={"adapter": adapter, "samples": samples[i : i + 500]},
                    headers=self.tenant(slug).headers,
                )
            )

    def policy(self, slug: str, adapter: str, **body: Any) -> dict[str, Any]:
        return self.ok(
            self.http.put(
                f"/v1/tenants/{slug}/adapters/{adapter}/drift-policy", json=body, headers=self.ops
            )
        )

    def jobs(self, slug: str, adapter: str) -> list[dict[str, Any]]:
        url = f"/v1/tenants/{slug}/training-jobs?adapter={adapter}"
        items: list[dict[str, Any]] = self.ok(self.http.get(url, headers=self.ops))["items"]
        return items

    def train_tasks(self, job_id: str) -> int:
        return sum(
            1 for name, args, _ in self.tasks.sent if name == "loraplex.train" and args == [job_id]
        )


@pytest.fixture(scope="module")
def retraining(
    pg_admin_url: str, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Retraining]:
    name = f"lpx_retrain_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = create_database(pg_admin_url, name)
    upgrade(url)
    home = tmp_path_factory.mktemp("retrain-home")
    settings = pg_settings(url, s3_endpoint, home, f"retrain-{uuid.uuid4().hex[:8]}")
    app = create_app(settings, queue=RecordingQueue())
    stack = Stack("postgres", app, app.state.engine)
    world = World(stack)
    base = Path(home / "tiny-base")
    make_base_model(base)
    world.http.post(
        "/v1/base-models", json={"name": "tiny", "uri": str(base)}, headers=world.ops.headers
    )
    ctx = build_context(settings, stack.tasks)
    try:
        yield Retraining(world, ctx)
    finally:
        ctx.engine.dispose()
        app.state.engine.dispose()


def orders(n: int, seed: int, shift: bool = False) -> list[dict[str, Any]]:
    return sample_rows("orders", n, seed=seed, shift=shift)
