"""The embedded default: no broker; the registry runs the training task in-process."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cli.compose import build_registry_app
from registry.auth.principal import Principal
from registry.auth.scopes import Role
from registry.auth.service import clients
from registry.db import run_unit_of_work
from registry.migrate import upgrade
from registry.settings import Settings
from workers.devmodel.samples import sample_rows, to_jsonl
from workers.inprocess import InProcessQueue

pytestmark = pytest.mark.slow


def test_training_runs_in_process_without_a_broker(tmp_path: Path, tiny_base: Path) -> None:
    settings = Settings(home=tmp_path / "home", eval_max_generate=4, log_json=True)
    settings.home_dir.mkdir()
    upgrade(settings.resolved_database_url)
    app = build_registry_app(settings)
    assert isinstance(app.state.tasks, InProcessQueue)
    for session in run_unit_of_work(app.state.sessionmaker):
        client, secret = clients.create(session, actor=Principal.local_operator(), role=Role.OPS)
    with TestClient(app, base_url="https://testserver") as http:  # runs the lifespan
        form = {"grant_type": "client_credentials"}
        token = http.post("/oauth/token", data=form, auth=(client.client_id, secret)).json()
        h = {"Authorization": f"Bearer {token['access_token']}"}
        calls = [
            http.post("/v1/base-models", json={"name": "tiny", "uri": str(tiny_base)}, headers=h),
            http.post("/v1/tenants", json={"slug": "acme", "display_name": "A"}, headers=h),
            http.post(
                "/v1/tenants/acme/datasets",
                data={"name": "orders"},
                files={"file": ("o.jsonl", to_jsonl(sample_rows("orders", 60, seed=3)))},
                headers=h,
            ),
            http.post(
                "/v1/tenants/acme/adapters",
                json={"name": "orders", "base_model": "tiny", "training": {"max_steps": 8}},
                headers=h,
            ),
        ]
        assert all(r.status_code == 201 for r in calls), [r.text for r in calls]
        job = http.post(
            "/v1/tenants/acme/training-jobs",
            json={"adapter": "orders", "dataset_ids": [calls[2].json()["id"]]},
            headers=h,
        ).json()
        deadline = time.monotonic() + 300
        while (body := http.get(f"/v1/tenants/acme/training-jobs/{job['id']}", headers=h).json())[
            "status"
        ] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, body
            time.sleep(0.5)
        assert body["status"] == "succeeded", body
        assert body["progress"]["step"] == body["progress"]["total_steps"] == 8
        version = http.get("/v1/tenants/acme/adapters/orders/versions/1", headers=h).json()
        assert version["status"] == "ready"
        assert (
            settings.home_dir / "objects" / version["artifact_prefix"] / "manifest.json"
        ).exists()
        kinds = [e["kind"] for e in body["events"]]
        assert kinds[-2:] == ["not_promoted", "succeeded"]  # manual policy by default
