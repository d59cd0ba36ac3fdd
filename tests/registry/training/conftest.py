from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import World
from tests.registry.adapters.conftest import AdapterWorld

ROWS = [
    {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
    for i in range(10)
]


class JobWorld(AdapterWorld):
    """AdapterWorld plus a dataset of acme's, and helpers to create and read jobs."""

    def __init__(self, world: World, base_dir: Path) -> None:
        super().__init__(world, base_dir)
        self.dataset = self.upload_dataset("chat", ROWS)

    def upload_dataset(self, name: str, rows: list[dict[str, Any]], headers=None, tenant="acme"):  # type: ignore[no-untyped-def]
        body = "".join(json.dumps(r) + "\n" for r in rows).encode()
        resp = self.http.post(
            f"/v1/tenants/{tenant}/datasets",
            data={"name": name},
            files={"file": ("d.jsonl", body)},
            headers=headers or self.acme.headers,
        )
        assert resp.status_code == 201, resp.text
        return resp.json()

    def create_job(self, headers=None, tenant: str = "acme", **body: Any):  # type: ignore[no-untyped-def]
        payload = {"adapter": "support", "dataset_ids": [self.dataset["id"]], **body}
        return self.http.post(
            f"/v1/tenants/{tenant}/training-jobs",
            json=payload,
            headers=headers or self.acme.headers,
        )

    def job(self, job_id: str, headers=None):  # type: ignore[no-untyped-def]
        resp = self.http.get(
            f"/v1/tenants/acme/training-jobs/{job_id}", headers=headers or self.acme.headers
        )
        assert resp.status_code == 200, resp.text
        return resp.json()


@pytest.fixture
def jw(world: World, tmp_path: Path) -> JobWorld:
    return JobWorld(world, tmp_path / "tiny-base")
