from __future__ import annotations

import uuid

import pytest

from registry.db import run_unit_of_work
from registry.tasks import TRAIN
from registry.training.lifecycle import lifecycle
from tests.registry.training.conftest import ROWS, JobWorld


def _versions(jw: JobWorld) -> list[dict]:
    resp = jw.http.get("/v1/tenants/acme/adapters/support/versions", headers=jw.acme.headers)
    assert resp.status_code == 200
    return resp.json()["items"]


@pytest.mark.smoke
def test_job_creates_a_queued_version_and_is_sent_after_commit(jw: JobWorld) -> None:
    resp = jw.create_job(hyperparameters={"epochs": 2, "learning_rate": 0.001})
    assert resp.status_code == 201, resp.text
    job = resp.json()
    assert job["status"] == "queued" and job["version"] == 1 and job["trigger"] == "manual"
    assert job["config"]["epochs"] == 2 and job["config"]["rank"] == 4  # override + adapter's
    assert [e["kind"] for e in job["events"]] == ["queued"]
    assert jw.world.stack.tasks.sent == [(TRAIN, [job["id"]], 0)]
    (version,) = _versions(jw)
    assert version["status"] == "queued" and version["job_id"] == job["id"]
    assert [(d["id"], d["role"]) for d in version["datasets"]] == [(jw.dataset["id"], "train")]
    assert version["training_config"] == job["config"]
    audit = jw.http.get("/v1/audit/events", headers=jw.world.ops.headers).json()["items"]
    assert any(e["action"] == "training_job.create" for e in audit)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"rank": 1000}, "hyperparameters.rank 1000 is above base model 'tiny''s maximum"),
        ({"learning_rate": -1}, "hyperparameters.learning_rate"),
        ({"bogus": 1}, "hyperparameters.bogus"),
        ({"target_modules": ["nope_proj"]}, "not linear modules"),
        ({"epochs": 0}, "hyperparameters.epochs"),
    ],
)
def test_bad_hyperparameters_are_422_and_nothing_is_stored(
    jw: JobWorld, overrides: dict, needle: str
) -> None:
    resp = jw.create_job(hyperparameters=overrides)
    assert resp.status_code == 422, resp.text
    assert needle in resp.json()["detail"]
    assert _versions(jw) == [] and jw.world.stack.tasks.sent == []


def test_datasets_and_validation_are_checked(jw: JobWorld) -> None:
    missing = str(uuid.uuid4())
    resp = jw.create_job(dataset_ids=[missing])
    assert resp.status_code == 404 and missing in resp.json()["detail"]
    resp = jw.create_job(dataset_ids=[jw.dataset["id"], jw.dataset["id"]])
    assert resp.status_code == 422 and "duplicates" in resp.json()["detail"]
    resp = jw.create_job(validation_dataset_id=jw.dataset["id"])
    assert resp.status_code == 422 and "also a training dataset" in resp.json()["detail"]
    one = jw.upload_dataset("one", ROWS[:1])
    resp = jw.create_job(dataset_ids=[one["id"]])
    assert resp.status_code == 422 and "at least 2" in resp.json()["detail"]
    resp = jw.create_job(dataset_ids=[one["id"]], validation_dataset_id=jw.dataset["id"])
    assert resp.status_code == 201, resp.text
    roles = {d["role"] for d in _versions(jw)[0]["datasets"]}
    assert roles == {"train", "validation"}
    assert jw.create_job(adapter="nope").status_code == 404
    assert _versions(jw)[-1]["version"] == 1  # refused requests allocated no numbers


def test_another_tenant_cannot_name_or_see_acme_things(jw: JobWorld) -> None:
    globex = jw.world.tenant("globex")
    theirs = jw.upload_dataset("g", ROWS, headers=globex.headers, tenant="globex")
    resp = jw.create_job(dataset_ids=[theirs["id"]])  # acme naming globex's dataset
    assert resp.status_code == 404
    job = jw.create_job().json()
    other = globex.headers
    assert (
        jw.http.get(f"/v1/tenants/acme/training-jobs/{job['id']}", headers=other).status_code == 404
    )
    assert (
        jw.http.get(f"/v1/tenants/globex/training-jobs/{job['id']}", headers=other).status_code
        == 404
    )
    resp = jw.http.post(f"/v1/tenants/globex/training-jobs/{job['id']}/cancel", headers=other)
    assert resp.status_code == 404
    resp = jw.create_job(headers=other, tenant="globex", dataset_ids=[theirs["id"]])
    assert resp.status_code == 404  # globex has no adapter 'support'
    listed = jw.http.get("/v1/tenants/globex/training-jobs", headers=other).json()["items"]
    assert listed == []


def test_archived_adapter_is_409(jw: JobWorld) -> None:
    jw.http.post("/v1/tenants/acme/adapters/support/archive", headers=jw.acme.headers)
    assert jw.create_job().status_code == 409


@pytest.mark.smoke
def test_cancel_a_queued_job_at_once(jw: JobWorld) -> None:
    job = jw.create_job().json()
    resp = jw.http.post(
        f"/v1/tenants/acme/training-jobs/{job['id']}/cancel", headers=jw.acme.headers
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "cancelled"
    assert _versions(jw)[0]["status"] == "cancelled"
    again = jw.http.post(
        f"/v1/tenants/acme/training-jobs/{job['id']}/cancel", headers=jw.acme.headers
    )
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]


def test_cancel_a_running_job_asks_its_worker(jw: JobWorld) -> None:
    job = jw.create_job().json()
    factory = jw.world.stack.app.state.sessionmaker
    for session in run_unit_of_work(factory):
        claim = lifecycle.claim(session, job_id=uuid.UUID(job["id"]), worker="w1", lease_seconds=60)
        assert claim.state == "claimed"
    resp = jw.http.post(
        f"/v1/tenants/acme/training-jobs/{job['id']}/cancel", headers=jw.acme.headers
    )
    body = resp.json()
    assert body["status"] == "running" and body["cancel_requested"] is True
    for session in run_unit_of_work(factory):
        state = lifecycle.heartbeat(
            session, job_id=uuid.UUID(job["id"]), worker="w1", lease_seconds=60
        )
    assert state == "cancel"


def test_ops_and_auditors_list_jobs_across_tenants(jw: JobWorld) -> None:
    acme_job = jw.create_job().json()
    resp = jw.http.get("/v1/training-jobs", headers=jw.world.ops.headers)
    assert [j["id"] for j in resp.json()["items"]] == [acme_job["id"]]
    assert resp.json()["items"][0]["tenant"] == "acme"
    resp = jw.http.get(
        "/v1/training-jobs?tenant=acme&status=queued", headers=jw.world.auditor.headers
    )
    assert len(resp.json()["items"]) == 1
    assert (
        jw.http.get("/v1/training-jobs?status=running", headers=jw.world.ops.headers).json()[
            "items"
        ]
        == []
    )
    assert (
        jw.http.get("/v1/training-jobs?tenant=nope", headers=jw.world.ops.headers).status_code
        == 404
    )
    assert jw.http.get("/v1/training-jobs", headers=jw.acme.headers).status_code == 403


def test_promotion_policy_is_validated(jw: JobWorld) -> None:
    url = "/v1/tenants/acme/adapters/support/promotion-policy"
    resp = jw.http.put(url, json={"mode": "auto", "margin": 0.05}, headers=jw.acme.headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["promotion_policy"]["mode"] == "auto"
    resp = jw.http.put(
        url, json={"mode": "auto", "primary_metric": "bleu"}, headers=jw.acme.headers
    )
    assert resp.status_code == 422 and "unknown metrics" in resp.text
    resp = jw.http.put(url, json={"mode": "sometimes"}, headers=jw.acme.headers)
    assert resp.status_code == 422
