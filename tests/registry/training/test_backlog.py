"""GET /v1/training-backlog and the backlog gauges on /metrics: jobs created through the API,
then moved to running / finished in the database (what a worker would have done)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import update

from registry.db import utcnow
from registry.models import TrainingJob
from registry.training import backlog_metrics
from tests.console.conftest import ConsoleClient
from tests.registry.training.conftest import ROWS, JobWorld

URL = "/v1/training-backlog"


def _set(jw: JobWorld, job_id: str, **values: Any) -> None:
    session = jw.world.stack.session()
    try:
        stmt = update(TrainingJob).where(TrainingJob.id == uuid.UUID(job_id))
        session.execute(stmt.values(**values))
        session.commit()
    finally:
        session.close()


def _queue(jw: JobWorld) -> dict[str, str]:
    """acme: 4 jobs (2 queued manual, 1 queued schedule, 1 running); globex: 1 queued drift,
    1 paused; finished: 2 succeeded and 1 failed in the last hour, 1 failed before it."""
    acme = [jw.create_job().json()["id"] for _ in range(4)]
    globex = jw.world.tenant("globex")
    resp = jw.http.post(
        "/v1/tenants/globex/adapters",
        headers=globex.headers,
        json={"name": "faq", "base_model": "tiny", "training": {"rank": 4}},
    )
    assert resp.status_code == 201, resp.text
    data = jw.upload_dataset("faq", ROWS, headers=globex.headers, tenant="globex")
    mine = [
        jw.create_job(
            headers=globex.headers, tenant="globex", adapter="faq", dataset_ids=[data["id"]]
        ).json()["id"]  # fmt: skip
        for _ in range(6)
    ]
    now = utcnow()
    _set(jw, acme[0], created_at=now - dt.timedelta(hours=3))  # the oldest queued job
    _set(jw, acme[2], trigger="schedule")
    _set(jw, acme[3], status="running", started_at=now)
    _set(jw, mine[0], trigger="drift", created_at=now - dt.timedelta(minutes=30))
    _set(jw, mine[1], status="paused")
    for job_id, status, ago in (
        (mine[2], "succeeded", 5),
        (mine[3], "succeeded", 50),
        (mine[4], "failed", 20),
        (mine[5], "failed", 90),  # outside the hour
    ):
        _set(jw, job_id, status=status, finished_at=now - dt.timedelta(minutes=ago))
    return {"acme_oldest": acme[0]}


@pytest.mark.smoke
def test_backlog_by_trigger_and_tenant_with_drain_rate_and_eta(jw: JobWorld) -> None:
    _queue(jw)
    resp = jw.http.get(URL, headers=jw.world.ops.headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["queued"], body["running"], body["paused"], body["backlog"]) == (4, 1, 1, 5)
    rows = body["by_trigger"]
    by_trigger = {t["trigger"]: (t["queued"], t["running"], t["paused"]) for t in rows}
    assert by_trigger == {"manual": (2, 1, 1), "drift": (1, 0, 0), "schedule": (1, 0, 0)}
    assert [(t["tenant"], t["queued"], t["running"], t["paused"]) for t in body["tenants"]] == [
        ("acme", 3, 1, 0),
        ("globex", 1, 0, 1),
    ]
    assert body["tenants_with_backlog"] == 2
    assert 3 * 3600 - 60 < body["oldest_queued_seconds"] < 3 * 3600 + 60
    assert 3 * 3600 - 60 < body["tenants"][0]["oldest_queued_seconds"] < 3 * 3600 + 60
    assert 1800 - 60 < body["tenants"][1]["oldest_queued_seconds"] < 1800 + 60
    drained = body["drained_last_hour"]
    assert (drained["succeeded"], drained["failed"], drained["cancelled"]) == (2, 1, 0)
    assert body["drain_per_hour"] == 3
    assert body["eta_seconds"] == pytest.approx(5 / 3 * 3600, abs=0.1)  # 5 jobs at 3/hour
    assert body["policy"] == {
        "priorities": {"manual": 10, "drift": 10, "schedule": 0},
        "tenant_concurrency": 2,
    }

    # auditors read it too; a limit lists fewer tenants but counts them all
    resp = jw.http.get(URL, params={"limit": 1}, headers=jw.world.auditor.headers)
    assert resp.status_code == 200, resp.text
    assert [t["tenant"] for t in resp.json()["tenants"]] == ["acme"]
    assert resp.json()["tenants_with_backlog"] == 2

    # one tenant: everything filtered to it
    body = jw.http.get(URL, params={"tenant": "globex"}, headers=jw.world.ops.headers).json()
    assert (body["tenant"], body["queued"], body["running"], body["paused"]) == ("globex", 1, 0, 1)
    assert [t["tenant"] for t in body["tenants"]] == ["globex"]
    assert body["drain_per_hour"] == 3 and body["eta_seconds"] == pytest.approx(1200, abs=0.1)
    body = jw.http.get(URL, params={"tenant": "acme"}, headers=jw.world.ops.headers).json()
    assert body["queued"] == 3 and body["drain_per_hour"] == 0
    assert body["eta_seconds"] is None and body["eta_at"] is None  # nothing drained: unknown


@pytest.mark.smoke
def test_backlog_is_for_ops_and_auditors(jw: JobWorld) -> None:
    resp = jw.http.get(URL, headers=jw.acme.headers)
    assert resp.status_code == 403 and "ops and auditors" in resp.json()["detail"]
    resp = jw.http.get(URL, params={"tenant": "nope"}, headers=jw.world.ops.headers)
    assert resp.status_code == 404 and "'nope'" in resp.json()["detail"]
    resp = jw.http.get(URL, params={"limit": 0}, headers=jw.world.ops.headers)
    assert resp.status_code == 422
    assert jw.http.get(URL).status_code == 401


def test_empty_backlog_has_a_zero_eta(jw: JobWorld) -> None:
    body = jw.http.get(URL, headers=jw.world.ops.headers).json()
    assert (body["queued"], body["backlog"], body["eta_seconds"]) == (0, 0, 0.0)
    assert body["tenants"] == [] and body["tenants_with_backlog"] == 0
    assert body["oldest_queued_seconds"] is None


def test_policy_reads_the_fair_queue_settings(
    jw: JobWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = jw.world.stack.app.state.settings
    for name, value in (("training_priority_schedule", -5), ("training_tenant_concurrency", 7)):
        if hasattr(settings, name):
            monkeypatch.setattr(settings, name, value)
        else:  # the fair-queue settings (issue 22, part C) not there yet: read through getattr
            monkeypatch.setattr(type(settings), name, value, raising=False)
    policy = jw.http.get(URL, headers=jw.world.ops.headers).json()["policy"]
    assert policy == {
        "priorities": {"manual": 10, "drift": 10, "schedule": -5},
        "tenant_concurrency": 7,
    }


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in:\n{text}")


def test_gauges_are_cached_between_scrapes(jw: JobWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    _queue(jw)
    registry = CollectorRegistry()
    collector = backlog_metrics.install(jw.world.stack.app, registry)
    assert collector.refreshes == 0  # registering reads nothing
    text = generate_latest(registry).decode()
    q = 'loraplex_training_backlog_jobs{status="queued",trigger='
    assert _sample(text, q + '"manual"}') == 2 and _sample(text, q + '"schedule"}') == 1
    assert _sample(text, 'loraplex_training_backlog_jobs{status="running",trigger="manual"}') == 1
    assert _sample(text, "loraplex_training_drain_per_hour") == 3
    assert _sample(text, "loraplex_training_backlog_eta_seconds") == pytest.approx(6000, abs=1)
    assert 3 * 3600 - 60 < _sample(text, "loraplex_training_oldest_queued_seconds") < 3 * 3600 + 60
    for _ in range(5):
        generate_latest(registry)
    assert collector.refreshes == 1  # 6 scrapes, one database read (15 s cache)
    monkeypatch.setattr(jw.world.stack.app.state.settings, "backlog_cache_seconds", 0)
    generate_latest(registry)
    assert collector.refreshes == 2


def test_gauges_survive_a_database_outage(jw: JobWorld) -> None:
    registry = CollectorRegistry()
    collector = backlog_metrics.install(jw.world.stack.app, registry)
    generate_latest(registry)
    real = jw.world.stack.app.state.sessionmaker

    def down() -> Any:
        raise OSError("connection refused")

    collector._refreshed = float("-inf")  # the cache ran out
    jw.world.stack.app.state.sessionmaker = down
    try:
        text = generate_latest(registry).decode()  # no exception: the last figures again
    finally:
        jw.world.stack.app.state.sessionmaker = real
    assert _sample(text, "loraplex_training_backlog_eta_seconds") == 0
    assert collector.refreshes == 2


def test_metrics_endpoint_serves_the_backlog_gauges(jw: JobWorld) -> None:
    backlog_metrics.install(jw.world.stack.app)  # the default registry, as create_app does
    jw.create_job()
    text = jw.http.get("/metrics").text
    assert _sample(text, 'loraplex_training_backlog_jobs{status="queued",trigger="manual"}') == 1
    assert _sample(text, "loraplex_training_backlog_eta_seconds") == float("inf")


@pytest.mark.smoke
def test_console_backlog_page(jw: JobWorld) -> None:
    _queue(jw)
    ops = ConsoleClient(jw.world, jw.world.ops)
    resp = ops.get("/console/backlog")
    assert resp.status_code == 200, resp.text
    html = resp.text
    assert 'id="queued">4<' in html and 'id="running">1<' in html
    assert 'href="/console/t/acme/jobs?status=queued">acme</a>' in html
    assert "top 2 of 2 by queued jobs" in html and 'href="/console/backlog"' in html
    assert 'id="drain">3 jobs' in html
    one = ops.get("/console/backlog", params={"tenant": "acme"}).text
    assert "Training backlog of acme" in one and "unknown: no job finished" in one
    assert ops.get("/console/backlog", params={"tenant": "nope"}).status_code == 404
    tenant = ConsoleClient(jw.world, jw.acme).get("/console/backlog")
    assert tenant.status_code == 403 and "for ops and auditors" in tenant.text
