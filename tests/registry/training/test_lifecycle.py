"""Claims, leases, retries and the reaper, against the database (no worker process)."""

from __future__ import annotations

import datetime as dt
import uuid

from registry.db import run_unit_of_work, utcnow
from registry.training.lifecycle import lifecycle
from tests.registry.training.conftest import JobWorld


def _uow(jw: JobWorld):  # type: ignore[no-untyped-def]
    return run_unit_of_work(jw.world.stack.app.state.sessionmaker)


def _claim(jw: JobWorld, job_id: str, worker: str, lease: int = 60) -> str:
    for session in _uow(jw):
        claim = lifecycle.claim(
            session, job_id=uuid.UUID(job_id), worker=worker, lease_seconds=lease
        )
    return claim.state


def test_two_jobs_of_one_adapter_never_run_at_once(jw: JobWorld) -> None:
    first, second = jw.create_job().json(), jw.create_job().json()
    assert _claim(jw, first["id"], "w1") == "claimed"
    assert _claim(jw, second["id"], "w2") == "busy"
    assert _claim(jw, second["id"], "w2") == "busy"
    assert [e["kind"] for e in jw.job(second["id"])["events"]] == ["queued", "waiting"]
    assert _claim(jw, first["id"], "w3") == "finished"  # a duplicate message is a no-op
    for session in _uow(jw):
        job = lifecycle.claim(
            session, job_id=uuid.UUID(first["id"]), worker="x", lease_seconds=1
        ).job
        assert job is not None
        lifecycle.mark_ready(session, job=job)
        lifecycle.succeed(session, job=job, result={})
    assert _claim(jw, second["id"], "w2") == "claimed"
    assert _claim(jw, str(uuid.uuid4()), "w2") == "missing"


def test_heartbeat_renews_the_lease_and_notices_a_takeover(jw: JobWorld) -> None:
    job = jw.create_job().json()
    _claim(jw, job["id"], "w1")
    for session in _uow(jw):
        state = lifecycle.heartbeat(
            session,
            job_id=uuid.UUID(job["id"]),
            worker="w1",
            lease_seconds=60,
            progress={"step": 3, "total_steps": 10},
        )
    assert state == "ok" and jw.job(job["id"])["progress"]["step"] == 3
    for session in _uow(jw):
        state = lifecycle.heartbeat(
            session, job_id=uuid.UUID(job["id"]), worker="someone-else", lease_seconds=60
        )
    assert state == "lost"


def test_transient_failures_retry_until_attempts_run_out(jw: JobWorld) -> None:
    job = jw.create_job().json()
    jid = uuid.UUID(job["id"])
    outcomes = []
    for attempt in range(3):  # max_attempts defaults to 3
        assert _claim(jw, job["id"], f"w{attempt}") == "claimed"
        for session in _uow(jw):
            row = lifecycle.claim(session, job_id=jid, worker="-", lease_seconds=1).job
            assert row is not None
            outcomes.append(lifecycle.fail(session, job=row, error="boom", retryable=True))
    assert outcomes == [True, True, False]
    body = jw.job(job["id"])
    assert body["status"] == "failed" and body["attempts"] == 3 and body["error"] == "boom"
    kinds = [e["kind"] for e in body["events"]]
    assert kinds.count("retrying") == 2 and kinds[-1] == "failed"
    versions = jw.http.get(
        "/v1/tenants/acme/adapters/support/versions", headers=jw.acme.headers
    ).json()["items"]
    assert versions[0]["status"] == "failed" and versions[0]["status_message"] == "boom"


def test_reaper_requeues_a_job_whose_lease_expired_and_fails_it_at_the_end(jw: JobWorld) -> None:
    job = jw.create_job().json()
    later = utcnow() + dt.timedelta(minutes=5)
    for attempt in range(3):
        assert _claim(jw, job["id"], f"w{attempt}", lease=30) == "claimed"
        for session in _uow(jw):
            assert lifecycle.reap(session, now=utcnow()) == []  # lease still valid
        for session in _uow(jw):
            reaped = lifecycle.reap(session, now=later)
        assert len(reaped) == 1 and reaped[0].job_id == uuid.UUID(job["id"])
        assert reaped[0].requeued is (attempt < 2)
    assert reaped[0].artifact_prefix and job["id"] not in reaped[0].artifact_prefix
    body = jw.job(job["id"])
    assert body["status"] == "failed" and "lease expired" in body["error"]


def test_stale_queued_jobs_are_resent_once_per_period(jw: JobWorld) -> None:
    job = jw.create_job().json()
    soon, later = utcnow() + dt.timedelta(minutes=1), utcnow() + dt.timedelta(hours=1)
    for session in _uow(jw):
        assert lifecycle.stale_queued(session, older_than=utcnow() - dt.timedelta(minutes=10)) == []
        assert lifecycle.stale_queued(session, older_than=soon) == [uuid.UUID(job["id"])]
    for session in _uow(jw):
        assert lifecycle.stale_queued(session, older_than=utcnow() - dt.timedelta(seconds=30)) == []
    assert later > soon
