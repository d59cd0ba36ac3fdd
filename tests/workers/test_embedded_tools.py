"""Tool-use rows through the whole training pipeline (embedded mode: no broker): trained,
scored on tool calling for the version and the base model, and gated."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cli.compose import build_registry_app
from registry.adapters.promotion import TOOL_METRICS
from registry.auth.principal import Principal
from registry.auth.scopes import Role
from registry.auth.service import clients
from registry.db import run_unit_of_work
from registry.migrate import upgrade
from registry.settings import Settings
from workers.devmodel.samples import sample_rows, to_jsonl

pytestmark = pytest.mark.slow


def test_agent_rows_train_and_score_tool_calls(tmp_path: Path, tiny_base: Path) -> None:
    settings = Settings(home=tmp_path / "home", eval_max_generate=12, log_json=True)
    settings.home_dir.mkdir()
    upgrade(settings.resolved_database_url)
    app = build_registry_app(settings)
    for session in run_unit_of_work(app.state.sessionmaker):
        client, secret = clients.create(session, actor=Principal.local_operator(), role=Role.OPS)
    with TestClient(app, base_url="https://testserver") as http:
        form = {"grant_type": "client_credentials"}
        token = http.post("/oauth/token", data=form, auth=(client.client_id, secret)).json()
        h = {"Authorization": f"Bearer {token['access_token']}"}
        rows = sample_rows("agent", 80, seed=5)
        calls = [
            http.post("/v1/base-models", json={"name": "tiny", "uri": str(tiny_base)}, headers=h),
            http.post("/v1/tenants", json={"slug": "initech", "display_name": "I"}, headers=h),
            http.post(
                "/v1/tenants/initech/datasets",
                data={"name": "desk"},
                files={"file": ("d.jsonl", to_jsonl(rows))},
                headers=h,
            ),
            http.post(
                "/v1/tenants/initech/adapters",
                json={"name": "desk", "base_model": "tiny", "training": {"max_steps": 4}},
                headers=h,
            ),
        ]
        assert all(r.status_code == 201 for r in calls), [r.text for r in calls]
        job = http.post(
            "/v1/tenants/initech/training-jobs",
            json={"adapter": "desk", "dataset_ids": [calls[2].json()["id"]]},
            headers=h,
        ).json()
        assert "id" in job, job
        deadline = time.monotonic() + 600
        url = f"/v1/tenants/initech/training-jobs/{job['id']}"
        while (body := http.get(url, headers=h).json())["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, body
            time.sleep(0.5)
        assert body["status"] == "succeeded", body
        evals = http.get("/v1/tenants/initech/adapters/desk/versions/1/evals", headers=h).json()
        by_subject = {e["subject"]: e for e in evals}
        for subject in ("version", "base_model"):
            metrics = by_subject[subject]["metrics"]
            assert set(TOOL_METRICS) <= set(metrics), (subject, metrics)
            assert all(0.0 <= metrics[m] <= 1.0 for m in TOOL_METRICS)
        details = by_subject["version"]["details"]
        kinds = details["generated_rows"]
        assert kinds["tool_call_rows"] > 0 and kinds["no_call_rows"] > 0
        assert kinds["text_rows"] + kinds["tool_call_rows"] == min(12, details["heldout_rows"])
        # the default gate looked at tool calling (manual policy: it says what it would do)
        decision = next(e for e in body["events"] if e["kind"] == "not_promoted")
        assert "tool_call_exact" in decision["message"], decision
