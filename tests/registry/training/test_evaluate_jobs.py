"""Evaluate jobs against the database (no worker): created only for a ready version with a suite
to score, and whatever happens to the job, the version it scores stays ready with its files."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from registry.db import run_unit_of_work, utcnow
from registry.models import AdapterVersion
from registry.training.lifecycle import lifecycle
from tests.registry.training.conftest import JobWorld

AD = "/v1/tenants/acme/adapters/support"
ROW = {
    "messages": [{"role": "user", "content": "hi"}],
    "checks": [{"type": "contains", "value": "x"}],
}
SUITE = json.dumps(ROW).encode() + b"\n"


def _pin(jw: JobWorld) -> None:
    resp = jw.http.post(
        "/v1/tenants/acme/eval-suites",
        data={"name": "golden"},
        files={"file": ("s.jsonl", SUITE)},
        headers=jw.acme.headers,
    )
    assert resp.status_code == 201, resp.text
    pins = {"suites": [{"name": "golden", "version": None}]}
    resp = jw.http.put(AD + "/eval-suites", json=pins, headers=jw.acme.headers)
    assert resp.status_code == 200, resp.text


def _evaluate(jw: JobWorld, version: int = 1) -> Any:
    return jw.http.post(f"{AD}/versions/{version}/evaluate", headers=jw.acme.headers)


def _version(jw: JobWorld, number: int = 1) -> dict[str, Any]:
    resp = jw.http.get(f"{AD}/versions/{number}", headers=jw.acme.headers)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_refused_without_a_suite_or_a_ready_version(jw: JobWorld) -> None:
    assert jw.upload().status_code == 201
    resp = _evaluate(jw)
    assert resp.status_code == 422 and "no eval suites" in resp.json()["detail"]
    _pin(jw)
    assert _evaluate(jw, 7).status_code == 404
    queued = jw.create_job().json()  # its version (v2) is queued, not ready
    resp = _evaluate(jw, queued["version"])
    assert resp.status_code == 409 and "only a ready version" in resp.json()["detail"]


def test_an_upload_with_a_pinned_suite_is_scored(jw: JobWorld) -> None:
    _pin(jw)
    assert jw.upload().status_code == 201
    jobs = jw.http.get("/v1/tenants/acme/training-jobs", headers=jw.acme.headers).json()["items"]
    assert [(j["kind"], j["trigger"], j["version"]) for j in jobs] == [("evaluate", "upload", 1)]


def test_failing_cancelling_or_reaping_an_evaluate_job_keeps_the_version(jw: JobWorld) -> None:
    assert jw.upload().status_code == 201
    _pin(jw)
    before = _version(jw)

    job = _evaluate(jw).json()
    assert job["kind"] == "evaluate" and job["status"] == "queued"
    jid = uuid.UUID(job["id"])
    for session in run_unit_of_work(jw.world.stack.app.state.sessionmaker):
        claimed = lifecycle.claim(session, job_id=jid, worker="w", lease_seconds=30).job
        assert claimed is not None
        assert session.get(AdapterVersion, claimed.version_id).status == "ready"  # type: ignore[union-attr]
        assert not lifecycle.fail(session, job=claimed, error="boom", retryable=False)
    assert jw.job(job["id"])["status"] == "failed"

    job = _evaluate(jw).json()
    for session in run_unit_of_work(jw.world.stack.app.state.sessionmaker):
        row = lifecycle.claim(session, job_id=uuid.UUID(job["id"]), worker="w", lease_seconds=30)
        assert row.job is not None
        lifecycle.finish_cancelled(session, job=row.job, by="someone")

    job = _evaluate(jw).json()
    for session in run_unit_of_work(jw.world.stack.app.state.sessionmaker):
        lifecycle.claim(session, job_id=uuid.UUID(job["id"]), worker="w", lease_seconds=1)
    later = utcnow() + dt.timedelta(minutes=5)
    for _ in range(3):
        for session in run_unit_of_work(jw.world.stack.app.state.sessionmaker):
            reaped = lifecycle.reap(session, now=later)
            assert all(r.artifact_prefix is None for r in reaped)  # nothing to delete
        for session in run_unit_of_work(jw.world.stack.app.state.sessionmaker):
            lifecycle.claim(session, job_id=uuid.UUID(job["id"]), worker="w", lease_seconds=1)
    after = _version(jw)
    assert after["status"] == "ready"
    assert after["artifact_prefix"] == before["artifact_prefix"]
    assert after["manifest_digest"] == before["manifest_digest"]
