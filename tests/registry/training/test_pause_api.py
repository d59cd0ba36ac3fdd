"""Pause and resume through the registry API and the worker-facing lifecycle (no worker)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from registry.db import run_unit_of_work, utcnow
from registry.errors import require
from registry.models import TrainingCheckpoint
from registry.tasks import TRAIN
from registry.training.lifecycle import artifact_prefix, lifecycle
from registry.training.repository import PlatformJobRepository
from tests.registry.training.conftest import JobWorld

JOBS = "/v1/tenants/acme/training-jobs"


def _uow(jw: JobWorld):  # type: ignore[no-untyped-def]
    return run_unit_of_work(jw.world.stack.app.state.sessionmaker)


def _post(jw: JobWorld, job_id: str, action: str, headers: Any = None) -> Any:
    return jw.http.post(f"{JOBS}/{job_id}/{action}", headers=headers or jw.acme.headers)


def _claim(jw: JobWorld, job_id: str, worker: str = "w1") -> None:
    for session in _uow(jw):
        claim = lifecycle.claim(session, job_id=uuid.UUID(job_id), worker=worker, lease_seconds=60)
    assert claim.state == "claimed"


def _worker_pauses(jw: JobWorld, job_id: str, key: str, step: int = 3) -> None:
    for session in _uow(jw):
        job = require(PlatformJobRepository(session).find(uuid.UUID(job_id)), "job")
        lifecycle.pause(session, job=job, resume_key=key, step=step, total_steps=10)


def test_a_queued_job_pauses_at_once_and_resumes_into_the_queue(jw: JobWorld) -> None:
    job = jw.create_job().json()
    jw.world.stack.tasks.sent.clear()
    resp = _post(jw, job["id"], "pause")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "paused" and resp.json()["pause_requested"] is False
    assert _post(jw, job["id"], "pause").json()["status"] == "paused"  # as is
    for session in _uow(jw):  # a stray message does not start a paused job
        stray = lifecycle.claim(session, job_id=uuid.UUID(job["id"]), worker="w", lease_seconds=9)
    assert stray.state == "finished"
    resp = _post(jw, job["id"], "resume")
    assert resp.status_code == 200 and resp.json()["status"] == "queued"
    assert jw.world.stack.tasks.sent == [(TRAIN, [job["id"]], 0)]
    kinds = [e["kind"] for e in resp.json()["events"]]
    assert kinds == ["queued", "paused", "resumed"]
    again = _post(jw, job["id"], "resume")
    assert again.status_code == 409 and "not paused" in again.json()["detail"]
    audit = jw.http.get("/v1/audit/events", headers=jw.world.ops.headers).json()["items"]
    actions = {e["action"] for e in audit}
    assert {"training_job.pause", "training_job.resume"} <= actions
    _claim(jw, job["id"])  # a resumed job is claimed as usual


def test_a_running_job_is_asked_and_the_worker_pauses_it(jw: JobWorld) -> None:
    job = jw.create_job().json()
    _claim(jw, job["id"])
    body = _post(jw, job["id"], "pause").json()
    assert body["status"] == "running" and body["pause_requested"] is True
    for session in _uow(jw):
        beat = lifecycle.heartbeat(
            session, job_id=uuid.UUID(job["id"]), worker="w1", lease_seconds=60
        )
    assert beat == "pause"
    key = artifact_prefix_of(jw, job["id"]) + "/paused/state.pt"
    _worker_pauses(jw, job["id"], key)
    body = jw.job(job["id"])
    assert body["status"] == "paused" and body["pause_requested"] is False
    assert body["events"][-1]["message"] == "paused at step 3 of 10"
    for session in _uow(jw):  # no lease, no worker: the reaper has nothing to do
        assert lifecycle.reap(session, now=utcnow() + dt.timedelta(days=1)) == []
        assert lifecycle.stale_queued(session, older_than=utcnow() + dt.timedelta(days=1)) == []
        row = require(PlatformJobRepository(session).find(uuid.UUID(job["id"])), "job")
        assert row.resume_key == key and row.worker is None
    version = jw.http.get(
        "/v1/tenants/acme/adapters/support/versions", headers=jw.acme.headers
    ).json()["items"][0]
    assert version["status"] == "queued"
    assert _post(jw, job["id"], "resume").json()["status"] == "queued"
    _claim(jw, job["id"], "w2")
    for session in _uow(jw):
        row = require(PlatformJobRepository(session).find(uuid.UUID(job["id"])), "job")
        assert row.resume_key == key and row.attempts == 2


def artifact_prefix_of(jw: JobWorld, job_id: str) -> str:
    for session in _uow(jw):
        job = require(PlatformJobRepository(session).find(uuid.UUID(job_id)), "job")
        prefix = artifact_prefix(job)
    return prefix


def test_cancel_a_paused_job_deletes_its_state_and_checkpoints(jw: JobWorld) -> None:
    job = jw.create_job().json()
    _claim(jw, job["id"])
    prefix = artifact_prefix_of(jw, job["id"])
    store = jw.world.stack.store
    store.put_bytes(f"{prefix}/paused/state.pt", b"state")
    store.put_bytes(f"{prefix}/checkpoints/step-2/adapter_model.safetensors", b"w")
    _record_checkpoint(jw, job["id"], 2)
    _worker_pauses(jw, job["id"], f"{prefix}/paused/state.pt")
    resp = _post(jw, job["id"], "cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    assert list(store.list_keys(prefix + "/")) == []
    for session in _uow(jw):
        assert session.query(TrainingCheckpoint).count() == 0
    assert _post(jw, job["id"], "pause").status_code == 409
    assert _post(jw, job["id"], "resume").status_code == 409


def _record_checkpoint(jw: JobWorld, job_id: str, step: int) -> list[str]:
    for session in _uow(jw):
        job = require(PlatformJobRepository(session).find(uuid.UUID(job_id)), "job")
        _, old = lifecycle.record_checkpoint(
            session,
            job=job,
            step=step,
            metrics={"step": step},
            prefix=f"{artifact_prefix(job)}/checkpoints/step-{step}",
            manifest={"files": {}},
            manifest_digest="0" * 64,
            size_bytes=1,
        )
    return old


def test_checkpoints_keep_the_last_few_and_a_retry_drops_later_ones(jw: JobWorld) -> None:
    job = jw.create_job().json()
    for session in _uow(jw):
        row = require(PlatformJobRepository(session).find(uuid.UUID(job["id"])), "job")
        row.keep_checkpoints = 2
    _claim(jw, job["id"])
    assert _record_checkpoint(jw, job["id"], 2) == []
    assert _record_checkpoint(jw, job["id"], 4) == []
    (dropped,) = _record_checkpoint(jw, job["id"], 6)
    assert dropped.endswith("/checkpoints/step-2")
    for session in _uow(jw):
        row = require(PlatformJobRepository(session).find(uuid.UUID(job["id"])), "job")
        gone = lifecycle.drop_checkpoints(session, job=row, after_step=4)
        assert [p.rsplit("/", 1)[1] for p in gone] == ["step-6"]
        steps = [c.step for c in session.query(TrainingCheckpoint).all()]
        assert steps == [4]
    kinds = [e["kind"] for e in jw.job(job["id"])["events"]]
    assert kinds.count("checkpoint") == 3


def test_finished_and_foreign_jobs(jw: JobWorld) -> None:
    job = jw.create_job().json()
    assert _post(jw, job["id"], "cancel").status_code == 200
    resp = _post(jw, job["id"], "pause")
    assert resp.status_code == 409 and "already cancelled" in resp.json()["detail"]
    other = jw.create_job().json()
    globex = jw.world.tenant("globex").headers
    for action in ("pause", "resume"):
        assert _post(jw, other["id"], action, headers=globex).status_code in (403, 404)
        url = f"/v1/tenants/globex/training-jobs/{other['id']}/{action}"
        assert jw.http.post(url, headers=globex).status_code == 404
    assert _post(jw, str(uuid.uuid4()), "pause").status_code == 404
    assert jw.job(other["id"])["status"] == "queued"
