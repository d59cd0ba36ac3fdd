"""The gateway as the tenant's one base URL, in-process on the real database (the test's
rolled-back transaction) with a fake engine at the HTTP boundary: `/v1/models` lists base
models, adapters, fine-tuned models and their checkpoints; retrieve and delete in OpenAI's
shapes; `ft:` names (and `...:ckpt-step-N`) reach the engine as the version's or checkpoint's
engine name; a deleted or another tenant's model is 404 `model_not_found`; the files and jobs
routes answer on the gateway, rate limited per tenant like inference.

The fine-tuning job's rows are written directly (a succeeded training job of an uploaded
version, its FineTuningJob and a checkpoint): how a job gets there is tests/registry/finetuning's
and the conformance suite's business."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from registry.db import run_unit_of_work, utcnow
from registry.finetuning import names
from registry.models import AdapterVersion, TrainingJob
from registry.models.enums import JobStatus, Trigger
from registry.models.finetuning import FineTuningJob, TenantFile, TrainingCheckpoint
from registry.settings import Settings
from serving.gateway.app import create_gateway, use_sessions
from serving.names import engine_name
from tests.conftest import Caller, World
from tests.registry.adapters.conftest import AdapterWorld
from tests.serving.fake_engine import attach, stop_all

USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
HELLO = [{"role": "user", "content": "hello"}]


@dataclass
class FineTuned:
    acme: Caller
    globex: Caller
    model: str  # the fine-tuned model's name
    checkpoint: str  # its checkpoint's name
    version_id: uuid.UUID
    checkpoint_id: uuid.UUID


def _fine_tuned(
    world: World, aw: AdapterWorld, status: JobStatus, suffix: str, other: Caller
) -> FineTuned:
    """A job of acme's on 'support' v1 in `status`, with a checkpoint at step 10."""
    for session in run_unit_of_work(world.stack.app.state.sessionmaker):
        version = session.scalars(select(AdapterVersion).where(AdapterVersion.version == 1)).one()
        tenant_id = version.tenant_id
        file = TenantFile(
            tenant_id=tenant_id,
            filename="train.jsonl",
            purpose="fine-tune",
            status="processed",
            created_by="test",
        )
        session.add(file)
        session.flush()
        training = TrainingJob(
            tenant_id=tenant_id,
            adapter_id=version.adapter_id,
            version_id=version.id,
            status=status,
            trigger=Trigger.MANUAL,
            config={},
            dataset_ids=[],
            created_by="test",
            finished_at=utcnow(),
        )
        session.add(training)
        session.flush()
        model = names.fine_tuned_model("tiny", "acme", suffix, training.id.hex[:8])
        session.add(
            FineTuningJob(
                id=training.id,
                tenant_id=tenant_id,
                training_job_id=training.id,
                adapter_id=version.adapter_id,
                model="tiny",
                suffix=suffix,
                fine_tuned_model=model,
                training_file_id=file.id,
                seed=1,
                method={"type": "supervised"},
                hyperparameters={},
                created_by="test",
            )
        )
        checkpoint = TrainingCheckpoint(
            tenant_id=tenant_id,
            job_id=training.id,
            adapter_id=version.adapter_id,
            version_id=version.id,
            base_model_id=version.base_model_id,
            step=10,
            metrics={"step": 10},
            artifact_prefix="x/checkpoints/step-10",
            manifest={},
            manifest_digest="0" * 64,
            size_bytes=1,
        )
        session.add(checkpoint)
        session.flush()
        ids = (version.id, checkpoint.id)
    return FineTuned(aw.acme, other, model, names.checkpoint_model(model, 10), *ids)


@pytest.fixture
def aw(world: World, tmp_path: Path) -> AdapterWorld:
    aw = AdapterWorld(world, tmp_path / "tiny-base")
    assert aw.upload().status_code == 201
    assert aw.set_alias("production", 1).status_code == 200
    return aw


@pytest.fixture
def ft(world: World, aw: AdapterWorld) -> FineTuned:
    return _fine_tuned(world, aw, JobStatus.SUCCEEDED, "", world.tenant("globex"))


@pytest.fixture
def gateway(world: World, tmp_path: Path) -> Iterator[Any]:
    """`make(**settings)` -> (app, bodies the fake engine received)."""
    apps: list[FastAPI] = []

    def make(**overrides: Any) -> tuple[FastAPI, list[dict[str, Any]]]:
        registry = world.stack.app
        settings = Settings(
            home=tmp_path / "gw-home",
            database_url=registry.state.settings.resolved_database_url,
            jwt_private_key_file=registry.state.settings.resolved_jwt_key_file,
            engine_url="http://engine",
            engine_api_key=SecretStr("k"),
            usage_flush_seconds=3600,
            gateway_resolve_ttl_seconds=0,
            **overrides,
        )
        app = create_gateway(settings)
        use_sessions(app, registry.state.sessionmaker)  # the test's rolled-back transaction
        app.state.store, app.state.tasks = world.stack.store, world.stack.tasks
        seen: list[dict[str, Any]] = []
        engine = FastAPI()

        @engine.post("/v1/chat/completions")
        async def complete(body: dict[str, Any]) -> dict[str, Any]:
            seen.append(body)
            return {"id": "x", "object": "chat.completion", "choices": [], "usage": USAGE}

        attach(app, engine)
        apps.append(app)
        return app, seen

    yield make
    for app in apps:
        app.state.db.dispose()
    stop_all()


def _chat(http: TestClient, caller: Caller, model: str) -> Any:
    return http.post(
        "/v1/chat/completions", json={"model": model, "messages": HELLO}, headers=caller.headers
    )


def _not_found(r: Any) -> None:
    assert r.status_code == 404, r.text
    error = r.json()["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model", error
    assert error["type"] == "invalid_request_error"


def test_models_list_base_adapters_fine_tuned_and_checkpoints(gateway: Any, ft: FineTuned) -> None:
    app, _ = gateway()
    http = TestClient(app)
    r = http.get("/v1/models", headers=ft.acme.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list"
    owners = {m["id"]: m["owned_by"] for m in body["data"]}
    assert owners == {
        "tiny": "loraplex",
        "support": "acme",
        "support@production": "acme",
        ft.model: "acme",
        ft.checkpoint: "acme",
    }
    assert all(m["object"] == "model" and isinstance(m["created"], int) for m in body["data"])
    # another tenant sees the base model only
    other = http.get("/v1/models", headers=ft.globex.headers).json()["data"]
    assert [m["id"] for m in other] == ["tiny"]

    for model in (ft.model, ft.checkpoint, "tiny", "support", "support@production"):
        got = http.get(f"/v1/models/{model}", headers=ft.acme.headers)
        assert got.status_code == 200, got.text
        assert got.json()["id"] == model and got.json()["owned_by"] == owners[model]
    for missing in ("support@v1", "nope", f"{ft.model}:ckpt-step-11", "ft:tiny:acme::00000000"):
        _not_found(http.get(f"/v1/models/{missing}", headers=ft.acme.headers))
    _not_found(http.get(f"/v1/models/{ft.model}", headers=ft.globex.headers))


def test_ft_names_reach_the_engine_as_the_version_or_checkpoint(
    gateway: Any, ft: FineTuned
) -> None:
    app, seen = gateway()
    http = TestClient(app)
    r = _chat(http, ft.acme, ft.model)
    assert r.status_code == 200, r.text
    assert r.headers["x-loraplex-model"] == ft.model
    r = _chat(http, ft.acme, ft.checkpoint)
    assert r.status_code == 200, r.text
    assert [b["model"] for b in seen] == [engine_name(ft.version_id), f"lpx-{ft.checkpoint_id.hex}"]
    usage = app.state.usage._usage
    assert [u.version_id for u in usage] == [ft.version_id, ft.version_id]  # the job's version
    assert [u.model for u in usage] == [ft.model, ft.checkpoint]

    _not_found(_chat(http, ft.globex, ft.model))  # another tenant's: as if it did not exist
    _not_found(_chat(http, ft.acme, f"{ft.model}:ckpt-step-3"))
    _not_found(_chat(http, ft.acme, "ft:tiny:acme::deadbeef"))
    assert len(seen) == 2


def test_a_job_that_did_not_succeed_serves_nothing(
    gateway: Any, world: World, aw: AdapterWorld
) -> None:
    running = _fine_tuned(world, aw, JobStatus.RUNNING, "wip", aw.acme)
    app, seen = gateway()
    http = TestClient(app)
    _not_found(_chat(http, running.acme, running.model))
    _not_found(_chat(http, running.acme, running.checkpoint))
    ids = {m["id"] for m in http.get("/v1/models", headers=running.acme.headers).json()["data"]}
    assert running.model not in ids and running.checkpoint not in ids
    assert seen == []


def test_delete_a_fine_tuned_model(gateway: Any, ft: FineTuned, world: World) -> None:
    app, seen = gateway()
    http = TestClient(app)
    assert _chat(http, ft.acme, ft.model).status_code == 200
    _not_found(http.delete(f"/v1/models/{ft.model}", headers=ft.globex.headers))

    r = http.delete(f"/v1/models/{ft.model}", headers=ft.acme.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": ft.model, "object": "model", "deleted": True}
    for name in (ft.model, ft.checkpoint):
        _not_found(http.get(f"/v1/models/{name}", headers=ft.acme.headers))
        _not_found(_chat(http, ft.acme, name))
    ids = {m["id"] for m in http.get("/v1/models", headers=ft.acme.headers).json()["data"]}
    assert ft.model not in ids and ft.checkpoint not in ids and "support" in ids
    _not_found(http.delete(f"/v1/models/{ft.model}", headers=ft.acme.headers))
    assert len(seen) == 1
    with world.stack.session() as s:  # the version stays in the registry
        assert s.get(AdapterVersion, ft.version_id) is not None


@pytest.mark.parametrize("model", ["support", "support@production", "tiny", "checkpoint"])
def test_only_fine_tuned_models_can_be_deleted(gateway: Any, ft: FineTuned, model: str) -> None:
    app, _ = gateway()
    http = TestClient(app)
    name = ft.checkpoint if model == "checkpoint" else model
    r = http.delete(f"/v1/models/{name}", headers=ft.acme.headers)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "model_not_deletable" and error["param"] == "model"
    assert "only fine-tuned models" in error["message"]
    _not_found(http.delete("/v1/models/nope", headers=ft.acme.headers))


def test_delete_needs_adapters_write(gateway: Any, ft: FineTuned, world: World) -> None:
    app, _ = gateway()
    headers = world.bearer(ft.acme.client_id, ft.acme.secret, "inference")
    r = TestClient(app).delete(f"/v1/models/{ft.model}", headers=headers)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["type"] == "permission_error"


def test_files_and_jobs_answer_on_the_gateway(gateway: Any, world: World) -> None:
    acme = world.tenant("acme")
    app, _ = gateway()
    http = TestClient(app)
    r = http.get("/v1/files", headers=acme.headers)
    assert r.status_code == 200, r.text
    assert r.json()["object"] == "list" and r.json()["data"] == []
    r = http.get("/v1/fine_tuning/jobs", headers=acme.headers)
    assert r.status_code == 200, r.text
    assert r.json()["object"] == "list"
    r = http.get("/v1/files")
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = http.get(f"/v1/fine_tuning/jobs/ftjob-{uuid.uuid4().hex}", headers=acme.headers)
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"
    json_type = {**acme.headers, "content-type": "application/json"}
    r = http.post("/v1/fine_tuning/jobs", content=b"{nope", headers=json_type)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error", r.text
    paths = app.openapi()["paths"]
    for path in ("/v1/files", "/v1/fine_tuning/jobs", "/v1/models", "/v1/models/{model}"):
        assert path in paths, sorted(paths)
        for operation in paths[path].values():
            assert {"401", "404", "429"} <= set(operation["responses"])


def test_fine_tuning_routes_share_the_tenant_request_bucket(gateway: Any, world: World) -> None:
    acme, globex = world.tenant("acme"), world.tenant("globex")
    app, _ = gateway(gateway_rate_limit_rps=0.001, gateway_rate_limit_burst=2)
    http = TestClient(app)
    assert http.get("/v1/models", headers=acme.headers).status_code == 200
    assert http.get("/v1/files", headers=acme.headers).status_code == 200
    r = http.get("/v1/fine_tuning/jobs", headers=acme.headers)
    assert r.status_code == 429, r.text
    assert r.json()["error"]["type"] == "rate_limit_error"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(r.headers["retry-after"]) >= 1
    r = _chat(http, acme, "support")  # inference takes from the same bucket
    assert r.status_code == 429, r.text
    assert http.get("/v1/models", headers=globex.headers).status_code == 200  # per tenant
