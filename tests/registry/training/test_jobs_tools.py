"""Rows with `tools` train only on a base model whose chat template renders them: a job on one
whose template cannot is refused at creation (422), with nothing stored and nothing sent."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import update

from registry.db import run_unit_of_work
from registry.models import Dataset
from tests.lora_files import make_base_model
from tests.registry.base_models.templates import HERMES, with_template
from tests.registry.training.conftest import ROWS, JobWorld


def _mark_tool_rows(jw: JobWorld, dataset: dict, tool_rows: int) -> None:
    """As the dataset upload records rows that carry `tools`."""
    for session in run_unit_of_work(jw.world.stack.app.state.sessionmaker):
        session.execute(
            update(Dataset)
            .where(Dataset.id == uuid.UUID(dataset["id"]))
            .values(tool_rows=tool_rows)
        )


def _versions(jw: JobWorld, adapter: str) -> list[dict]:
    url = f"/v1/tenants/acme/adapters/{adapter}/versions"
    resp = jw.http.get(url, headers=jw.acme.headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


def test_tool_rows_on_a_template_without_tools_are_422(jw: JobWorld) -> None:
    assert jw.base["chat_template_tools"] is False
    _mark_tool_rows(jw, jw.dataset, 3)
    resp = jw.create_job()
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert "base model 'tiny''s chat template cannot render tools" in detail
    assert "'chat' v1 (3 rows)" in detail and "upload rows without tools" in detail
    assert _versions(jw, "support") == [] and jw.world.stack.tasks.sent == []


def test_tool_rows_in_the_validation_set_count_too(jw: JobWorld) -> None:
    held_out = jw.upload_dataset("held-out", ROWS[:3])
    _mark_tool_rows(jw, held_out, 1)
    resp = jw.create_job(validation_dataset_id=held_out["id"])
    assert resp.status_code == 422, resp.text
    assert "'held-out' v1 (1 rows)" in resp.json()["detail"]
    assert _versions(jw, "support") == [] and jw.world.stack.tasks.sent == []


def test_tool_rows_on_a_template_with_tools_train(jw: JobWorld, tmp_path: Path) -> None:
    folder = with_template(make_base_model(tmp_path / "qwenish"), HERMES)
    resp = jw.http.post(
        "/v1/base-models",
        json={"name": "qwenish", "uri": str(folder)},
        headers=jw.world.ops.headers,
    )
    assert resp.status_code == 201 and resp.json()["chat_template_tools"] is True, resp.text
    resp = jw.http.post(
        "/v1/tenants/acme/adapters",
        headers=jw.acme.headers,
        json={"name": "agent", "base_model": "qwenish", "training": {"rank": 4}},
    )
    assert resp.status_code == 201, resp.text
    _mark_tool_rows(jw, jw.dataset, 3)
    resp = jw.create_job(adapter="agent")
    assert resp.status_code == 201, resp.text
    assert [v["status"] for v in _versions(jw, "agent")] == ["queued"]
    # rows without tools still train on a template without them
    _mark_tool_rows(jw, jw.dataset, 0)
    assert jw.create_job().status_code == 201
