"""Pause, resume and checkpoints on real services (registry, Celery worker, Redis, PostgreSQL,
S3, the tiny base model): a job paused while queued and again mid-run resumes from where it
stopped, drops its saved state once it succeeds, and keeps its last checkpoints, stored and
checked like versions. That the adapter equals an uninterrupted run's is proven by
tests/workers/training/test_resume.py and, through the OpenAI API on the serving stack, by
tests/serving/test_openai_finetuning.py (one uninterrupted reference run is enough suite-wide)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.live import BUCKET
from tests.workers.platform import Platform
from workers.devmodel.samples import sample_rows, to_jsonl

pytestmark = pytest.mark.slow
CONFIG = {
    "epochs": 40,
    "max_steps": 60,
    "learning_rate": 0.005,
    "batch_size": 4,
    "rank": 8,
    "max_seq_length": 128,
    "early_stopping_patience": 0,
}
JOBS = "/v1/tenants/acme/training-jobs"


def _adapter(p: Platform, name: str) -> None:
    body = {"name": name, "base_model": "tiny", "training": CONFIG}
    p.ok(p.http.post("/v1/tenants/acme/adapters", json=body, headers=p.acme))


def _job(p: Platform, adapter: str, dataset: dict[str, Any]) -> dict[str, Any]:
    body = {"adapter": adapter, "dataset_ids": [dataset["id"]]}
    return p.ok(p.http.post(JOBS, json=body, headers=p.acme))


def _post(p: Platform, job_id: str, action: str) -> dict[str, Any]:
    return p.ok(p.http.post(f"{JOBS}/{job_id}/{action}", headers=p.acme))


def _sql(p: Platform, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(p.live.env["LORAPLEX_DATABASE_URL"])
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql), params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def _version(p: Platform, adapter: str) -> dict[str, Any]:
    return p.ok(p.http.get(f"/v1/tenants/acme/adapters/{adapter}/versions/1", headers=p.acme))


def _object(p: Platform, key: str) -> bytes:
    body: bytes = p.s3.get_object(Bucket=BUCKET, Key=f"{p.prefix}/{key}")["Body"].read()
    return body


def test_a_job_paused_twice_resumes_where_it_stopped(platform: Platform) -> None:
    p = platform
    data = p.ok(
        p.http.post(
            "/v1/tenants/acme/datasets",
            data={"name": "pause"},
            files={"file": ("p.jsonl", to_jsonl(sample_rows("orders", 24, seed=3)))},
            headers=p.acme,
        )
    )
    _adapter(p, "pauseme")

    job = _job(p, "pauseme", data)
    jid = job["id"]
    first = _post(p, jid, "pause")  # before its first step, or at once while queued
    assert first["status"] == "paused" or first["pause_requested"]
    p.wait_job(jid, until={"paused"}, timeout=120)
    _sql(p, "UPDATE training_jobs SET keep_checkpoints = 2 WHERE id = :id", id=jid)
    assert _post(p, jid, "resume")["status"] == "queued"

    running = p.wait_job(jid, until={"running"}, step=4, timeout=120)
    assert running["progress"]["step"] < running["progress"]["total_steps"]
    _post(p, jid, "pause")
    paused = p.wait_job(jid, until={"paused"}, timeout=60)
    pause = [e for e in paused["events"] if e["kind"] == "paused"][-1]
    step, total = pause["data"]["step"], pause["data"]["total_steps"]
    assert 4 <= step < total == 60, pause
    prefix = _version(p, "pauseme")["artifact_prefix"] or _sql(
        p, "SELECT resume_key FROM training_jobs WHERE id = :id", id=jid
    )[0][0].removesuffix("/paused/state.pt")
    state_key = f"{prefix}/paused/state.pt"
    assert p.objects(state_key) and _version(p, "pauseme")["status"] == "queued"

    _post(p, jid, "resume")
    done = p.wait_job(jid)
    assert done["status"] == "succeeded", done
    kinds = [e["kind"] for e in done["events"]]
    assert kinds.count("paused") == 2 and kinds.count("resumed") >= 2
    assert any(e["message"] == f"resumed from step {step}" for e in done["events"])
    assert "checkpoint" in kinds and "metrics" in kinds
    assert not p.objects(state_key)  # the state went once the job succeeded

    weights = _version(p, "pauseme")["manifest"]["files"]["adapter_model.safetensors"]
    assert done["result"]["adapter_sha256"] == weights["sha256"]

    rows = _sql(
        p,
        "SELECT step, artifact_prefix, manifest FROM training_checkpoints WHERE job_id = :id "
        "ORDER BY step",
        id=jid,
    )
    assert 1 <= len(rows) <= 2, rows
    assert kinds.count("checkpoint") >= len(rows)
    for ckpt_step, ckpt_prefix, manifest in rows:
        assert ckpt_prefix == f"{prefix}/checkpoints/step-{ckpt_step}"
        assert manifest["checkpoint_step"] == ckpt_step
        for name, meta in manifest["files"].items():
            body = _object(p, f"{ckpt_prefix}/{name}")
            assert hashlib.sha256(body).hexdigest() == meta["sha256"]
    kept = {r[1] for r in rows}
    stored = {k.rsplit("/", 1)[0] for k in p.objects(f"{prefix}/checkpoints/")}
    assert {s.removeprefix(f"{p.prefix}/") for s in stored} == kept  # the older ones went
    metrics = [e for e in done["events"] if e["kind"] == "metrics"]
    assert metrics[0]["data"]["step"] == 1 and metrics[-1]["data"]["step"] == 60
    assert all(0 <= e["data"]["train_mean_token_accuracy"] <= 1 for e in metrics)
    assert any("valid_mean_token_accuracy" in e["data"] for e in metrics)
