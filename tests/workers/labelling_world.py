"""A tenant with traffic, a pinned suite and a teacher, for labelling tests on the real
registry (PostgreSQL, S3); the worker runs in this process on the test's own transaction."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from registry.db import utcnow
from registry.models import Adapter, Feedback, LabellingJob, TrafficSample
from tests.conftest import World
from tests.registry.drift.test_traffic_api import TrafficWorld
from workers.context import WorkerContext


def chat(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


class LabelWorld(TrafficWorld):
    def __init__(self, world: World, base_dir: Path, secrets: Path) -> None:
        super().__init__(world, base_dir)
        self.secrets = secrets
        settings = world.stack.app.state.settings.model_copy(update={"secrets_dir": secrets})
        stack = world.stack
        self.ctx = WorkerContext(
            settings=settings,
            engine=stack.engine,
            sessions=stack.app.state.sessionmaker,
            store=stack.store,
            queue=stack.tasks,
        )

    def add_teacher(self, url: str, **over: Any) -> dict[str, Any]:
        body = {"name": "tutor", "base_url": url, "model": "big", "secret_name": "TUTOR_KEY"}
        (self.secrets / "TUTOR_KEY").write_text("sk-tutor\n")
        resp = self.http.post("/v1/teachers", json=body | over, headers=self.world.ops.headers)
        assert resp.status_code == 201, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def add_samples(
        self,
        records: list[dict[str, Any]],
        *,
        age: dt.timedelta = dt.timedelta(hours=1),
        request_ids: list[str] | None = None,
    ) -> None:
        with self.world.stack.session() as session, session.begin():
            adapter = session.execute(select(Adapter).where(Adapter.name == "support")).scalar_one()
            for i, record in enumerate(records):
                session.add(
                    TrafficSample(
                        tenant_id=adapter.tenant_id,
                        adapter_id=adapter.id,
                        source="gateway",
                        record=record,
                        request_id=request_ids[i] if request_ids else None,
                        created_at=utcnow() - age + dt.timedelta(seconds=i),
                    )
                )

    def add_feedback(self, request_id: str, rating: int, correction: Any = None) -> None:
        with self.world.stack.session() as session, session.begin():
            adapter = session.execute(select(Adapter).where(Adapter.name == "support")).scalar_one()
            session.add(
                Feedback(
                    tenant_id=adapter.tenant_id,
                    adapter_id=adapter.id,
                    version_id=uuid.UUID(self.version_ids[1]),
                    request_id=request_id,
                    rating=rating,
                    correction=correction,
                    created_by="test",
                )
            )

    def upload_suite(self, name: str, rows: list[dict[str, Any]]) -> None:
        body = "".join(json.dumps(r) + "\n" for r in rows).encode()
        resp = self.http.post(
            "/v1/tenants/acme/eval-suites",
            data={"name": name},
            files={"file": ("s.jsonl", body)},
            headers=self.acme.headers,
        )
        assert resp.status_code == 201, resp.text
        resp = self.http.put(
            "/v1/tenants/acme/adapters/support/eval-suites",
            json={"suites": [{"name": name}]},
            headers=self.acme.headers,
        )
        assert resp.status_code == 200, resp.text

    def create_job(self, **body: Any) -> dict[str, Any]:
        resp = self.http.post(
            "/v1/tenants/acme/adapters/support/labelling-jobs",
            json={"teacher": "tutor", "dataset": "taught"} | body,
            headers=self.acme.headers,
        )
        assert resp.status_code == 202, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def job(self, job_id: str) -> dict[str, Any]:
        resp = self.http.get(f"/v1/tenants/acme/labelling-jobs/{job_id}", headers=self.acme.headers)
        assert resp.status_code == 200, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def rows(self, dataset_id: str) -> list[dict[str, Any]]:
        resp = self.http.get(
            f"/v1/tenants/acme/datasets/{dataset_id}/content", headers=self.acme.headers
        )
        assert resp.status_code == 200, resp.text
        return [json.loads(line) for line in resp.content.splitlines() if line.strip()]

    def datasets(self) -> list[dict[str, Any]]:
        resp = self.http.get("/v1/tenants/acme/datasets", headers=self.acme.headers)
        return resp.json()["items"]  # type: ignore[no-any-return]

    def dataset_objects(self) -> list[str]:
        prefix = f"tenants/{self.acme.tenant_id}/datasets/"
        return list(self.world.stack.store.list_keys(prefix))

    def raw_job(self, job_id: str) -> LabellingJob:
        with self.world.stack.session() as session:
            return session.get_one(LabellingJob, uuid.UUID(job_id))
