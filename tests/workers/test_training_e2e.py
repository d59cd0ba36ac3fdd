"""Training on real services: registry and Celery worker processes, Redis, PostgreSQL, the S3
server, the tiny base model. Each test uses its own adapter of tenant acme."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from typing import Any

import pytest

from tests.live import BUCKET
from tests.workers.platform import Platform
from workers.devmodel.samples import sample_rows, to_jsonl

pytestmark = pytest.mark.slow
QUICK = {"epochs": 3, "learning_rate": 0.005, "batch_size": 8, "rank": 8, "max_seq_length": 128}


def _adapter(p: Platform, name: str, policy: str = "auto", **training: Any) -> None:
    p.ok(
        p.http.post(
            "/v1/tenants/acme/adapters",
            json={"name": name, "base_model": "tiny", "training": {**QUICK, **training}},
            headers=p.acme,
        )
    )
    p.ok(
        p.http.put(
            f"/v1/tenants/acme/adapters/{name}/promotion-policy",
            json={"mode": policy},
            headers=p.acme,
        )
    )


def _dataset(p: Platform, name: str = "orders", n: int = 160) -> dict[str, Any]:
    return p.ok(
        p.http.post(
            "/v1/tenants/acme/datasets",
            data={"name": name},
            files={"file": ("orders.jsonl", to_jsonl(sample_rows("orders", n, seed=1)))},
            headers=p.acme,
        )
    )


def _job(p: Platform, adapter: str, dataset: dict[str, Any], **hyper: Any) -> dict[str, Any]:
    return p.ok(
        p.http.post(
            "/v1/tenants/acme/training-jobs",
            json={"adapter": adapter, "dataset_ids": [dataset["id"]], "hyperparameters": hyper},
            headers=p.acme,
        )
    )


def _version(p: Platform, adapter: str, number: int) -> dict[str, Any]:
    url = f"/v1/tenants/acme/adapters/{adapter}/versions/{number}"
    return p.ok(p.http.get(url, headers=p.acme))


def _kinds(job: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in job["events"]]


def test_train_evaluate_and_promote_on_real_services(platform: Platform) -> None:
    p = platform
    _adapter(p, "orders")
    data = _dataset(p)
    job = _job(p, "orders", data)
    running = p.wait_job(job["id"], until={"running"}, step=1)
    assert 0 < running["progress"]["step"] <= running["progress"]["total_steps"]
    assert running["progress"]["tokens_per_second"] > 0
    done = p.wait_job(job["id"])
    assert done["status"] == "succeeded", done
    kinds = _kinds(done)
    assert kinds[:3] == ["queued", "started", "data"] and "eval" in kinds
    assert kinds[-3:] == ["artifact", "promoted", "succeeded"]

    version = _version(p, "orders", 1)
    assert version["status"] == "ready" and version["job_id"] == job["id"]
    manifest = version["manifest"]
    assert manifest["data"][0]["sha256"] == data["sha256"]
    assert manifest["libraries"]["peft"] and manifest["config_hash"] == version["config_hash"]
    for name, meta in manifest["files"].items():  # through the API and straight from S3
        resp = p.http.get(
            f"/v1/tenants/acme/adapters/orders/versions/1/files/{name}", headers=p.acme
        )
        assert hashlib.sha256(resp.content).hexdigest() == meta["sha256"]
        key = f"{version['artifact_prefix']}/{name}"
        body = p.s3.get_object(Bucket=BUCKET, Key=f"{p.prefix}/{key}")["Body"].read()
        assert (
            hashlib.sha256(body).hexdigest() == meta["sha256"] == resp.headers["x-content-sha256"]
        )
    raw = p.http.get(
        "/v1/tenants/acme/adapters/orders/versions/1/files/manifest.json", headers=p.acme
    ).content
    assert hashlib.sha256(raw).hexdigest() == version["manifest_digest"]

    evals = p.ok(p.http.get("/v1/tenants/acme/adapters/orders/versions/1/evals", headers=p.acme))
    by_subject = {e["subject"]: e["metrics"] for e in evals}
    ours, base = by_subject["version"], by_subject["base_model"]
    assert ours["eval_loss"] < 0.8 * base["eval_loss"], (ours, base)
    assert {"perplexity", "exact_match", "json_valid"} <= set(ours)
    aliases = p.ok(p.http.get("/v1/tenants/acme/adapters/orders/aliases", headers=p.acme))
    assert [(a["alias"], a["version"]) for a in aliases] == [("production", 1)]
    history = p.ok(
        p.http.get("/v1/tenants/acme/adapters/orders/aliases/production/history", headers=p.acme)
    )
    assert "beat the base model" in history[-1]["reason"] and job["id"] in history[-1]["reason"]


def test_a_worker_killed_mid_training_leaves_nothing_visible_and_the_job_is_retried(
    platform: Platform,
) -> None:
    p = platform
    _adapter(p, "killme", early_stopping_patience=0, epochs=30, max_steps=30)
    job = _job(p, "killme", _dataset(p, "kill"))
    running = p.wait_job(job["id"], until={"running"}, step=3)
    assert running["progress"]["step"] < 30
    p.workers[-1].kill()
    killed_at = time.monotonic()
    version = _version(p, "killme", 1)
    assert version["status"] == "training" and version["manifest"] is None
    assert not [
        k for k in p.objects("tenants/") if k.endswith("manifest.json") and version["id"] in k
    ]
    resp = p.http.get(
        "/v1/tenants/acme/adapters/killme/versions/1/files/manifest.json", headers=p.acme
    )
    assert resp.status_code == 404
    p.start_worker()  # meanwhile beat has run the reaper
    deadline = time.monotonic() + 60
    while "retrying" not in _kinds(p.wait_job(job["id"], until={"queued", "running"}, timeout=60)):
        assert time.monotonic() < deadline, p.worker_log()[-3000:]
        time.sleep(0.2)
    reaped_after = time.monotonic() - killed_at
    assert reaped_after < 4 + 2 + 10  # lease + reaper interval + worker start-up
    done = p.wait_job(job["id"])
    assert done["status"] == "succeeded" and done["attempts"] == 2, done
    retry = next(e for e in done["events"] if e["kind"] == "retrying")
    assert "lease expired" in retry["message"]
    assert _version(p, "killme", 1)["status"] == "ready"


def test_cancel_stops_training_at_the_next_step(platform: Platform) -> None:
    p = platform
    _adapter(p, "cancelme", early_stopping_patience=0, epochs=50, max_steps=500)
    job = _job(p, "cancelme", _dataset(p, "cancel"))
    p.wait_job(job["id"], until={"running"}, step=2)
    asked = time.monotonic()
    p.ok(p.http.post(f"/v1/tenants/acme/training-jobs/{job['id']}/cancel", headers=p.acme))
    done = p.wait_job(job["id"], timeout=60)
    took = time.monotonic() - asked
    assert done["status"] == "cancelled" and done["progress"]["step"] < 500
    assert took < 10, took
    assert "cancel_requested" in _kinds(done) and _kinds(done)[-1] == "cancelled"
    version = _version(p, "cancelme", 1)
    assert version["status"] == "cancelled" and version["artifact_prefix"] is None
    assert not [k for k in p.objects("tenants/") if version["id"] in k]


def test_two_jobs_of_one_adapter_train_one_after_the_other(platform: Platform) -> None:
    p = platform
    _adapter(p, "twin", max_steps=25)
    data = _dataset(p, "twin")
    first, second = _job(p, "twin", data), _job(p, "twin", data)
    a, b = p.wait_job(first["id"]), p.wait_job(second["id"])
    assert a["status"] == b["status"] == "succeeded", (a, b)
    spans = sorted(
        (dt.datetime.fromisoformat(j["started_at"]), dt.datetime.fromisoformat(j["finished_at"]))
        for j in (a, b)
    )
    assert spans[0][1] <= spans[1][0], spans  # no overlap
    # Both doorbells rang while the worker had two threads free: the fair claim skipped the
    # busy adapter's second job (one attempt each, no failed claim) until the first finished.
    assert a["attempts"] == b["attempts"] == 1, (a, b)
    # the second was scored against the first one in production
    later = max((a, b), key=lambda j: j["started_at"])
    assert "production" in later["result"]["scores"]


def test_same_data_config_and_seed_give_the_same_adapter_digest(platform: Platform) -> None:
    p = platform
    data = _dataset(p, "det")
    digests = []
    for name in ("det-a", "det-b"):
        _adapter(p, name, max_steps=20, policy="manual")
        done = p.wait_job(_job(p, name, data)["id"])
        assert done["status"] == "succeeded", done
        assert "not_promoted" in _kinds(done)  # manual policy
        digests.append(_version(p, name, 1)["manifest"]["files"]["adapter_model.safetensors"])
    assert digests[0] == digests[1]
