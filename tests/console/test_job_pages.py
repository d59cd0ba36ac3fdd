"""Job pages: lists, the job page and its live part (progress, loss curves from the worker's
metrics events, X-Live-Done), and the cancel form (reason into the events and the audit log)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from registry.console.job_queries import thin
from registry.db import run_unit_of_work
from registry.models import TrainingJob
from registry.models.enums import JobStatus
from registry.training.repository import PlatformJobRepository
from registry.training.service import add_event
from tests.conftest import World
from tests.console.conftest import ConsoleClient
from tests.registry.training.conftest import JobWorld

pytestmark = pytest.mark.smoke


@pytest.fixture
def jw(world: World, tmp_path: Path) -> JobWorld:
    return JobWorld(world, tmp_path / "tiny-base")


def new_job(jw: JobWorld) -> str:
    resp = jw.create_job()
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def update_job(world: World, job_id: str, **values: Any) -> None:
    for session in run_unit_of_work(world.stack.app.state.sessionmaker):
        job = PlatformJobRepository(session).find(uuid.UUID(job_id))
        assert job is not None
        for k, v in values.items():
            setattr(job, k, v)


def seed_metrics(world: World, job_id: str, steps: int, eval_every: int) -> None:
    """What workers/checkpoints.record_metrics writes: train loss each step, held-out loss at
    evals."""
    for session in run_unit_of_work(world.stack.app.state.sessionmaker):
        job = session.get(TrainingJob, uuid.UUID(job_id))
        assert job is not None
        for step in range(1, steps + 1):
            data: dict[str, Any] = {
                "step": step,
                "total_steps": 20,
                "train_loss": 2.0 / step,
                "train_mean_token_accuracy": 0.5,
            }
            if step % eval_every == 0:
                data.update(valid_loss=2.5 / step, full_valid_loss=2.5 / step)
            add_event(session, job, "metrics", f"Step {step}/20", **data)


def series_points(html: str, label: str) -> int:
    found = re.search(rf'data-series="{label}" data-points="(\d+)"', html)
    assert found, html
    return int(found.group(1))


def test_live_part_draws_loss_curves_and_says_when_done(jw: JobWorld, world: World) -> None:
    job_id = new_job(jw)
    update_job(
        world,
        job_id,
        status=JobStatus.RUNNING,
        progress={"step": 8, "total_steps": 20, "epoch": 0.4, "train_loss": 0.25},
    )
    seed_metrics(world, job_id, steps=8, eval_every=4)
    c = ConsoleClient(world, jw.acme)
    page = c.get(f"/console/t/acme/jobs/{job_id}")
    assert page.status_code == 200, page.text
    live_url = f"/console/t/acme/jobs/{job_id}/live"
    assert f'<div id="live" data-live="{live_url}" data-interval="1500"' in page.text
    assert 'id="cancel-form"' in page.text and 'id="datasets"' in page.text
    assert jw.dataset["name"] in page.text.split('id="datasets"')[1]
    live = c.get(live_url)
    assert live.status_code == 200 and "x-live-done" not in live.headers
    assert "<html" not in live.text and 'id="loss-chart"' in live.text
    assert re.search(r'id="progress"[^>]*>step 8 / 20<', live.text)
    assert series_points(live.text, "train loss") == 8
    assert series_points(live.text, "held-out eval loss") == 2
    events = live.text.split('id="events"')[1]
    assert 'data-kind="queued"' in events and 'data-kind="metrics"' not in events
    assert "script-src 'self'" in live.headers["content-security-policy"]

    update_job(world, job_id, status=JobStatus.SUCCEEDED)
    done = c.get(live_url)
    assert done.status_code == 200 and done.headers["x-live-done"] == "1"
    assert 'id="cancel-form"' not in c.get(f"/console/t/acme/jobs/{job_id}").text


def test_a_job_without_metrics_shows_an_empty_chart(jw: JobWorld, world: World) -> None:
    job_id = new_job(jw)
    live = ConsoleClient(world, jw.acme).get(f"/console/t/acme/jobs/{job_id}/live")
    assert live.status_code == 200
    assert "no data yet" in live.text and re.search(r">step 0 / \?<", live.text)


def test_cancel_with_a_reason_reaches_the_events_and_the_audit_log(
    jw: JobWorld, world: World
) -> None:
    job_id = new_job(jw)
    c = ConsoleClient(world, jw.acme)
    url = f"/console/t/acme/jobs/{job_id}/cancel"
    for reason in ("", "no", "x" * 501):
        resp = c.post(url, {"reason": reason})
        assert resp.status_code == 422 and "reason" in resp.text, reason
    resp = c.post(url, {"reason": "wrong dataset uploaded"})
    assert resp.status_code == 303, resp.text
    assert resp.headers["location"] == f"/console/t/acme/jobs/{job_id}?done=cancelled"
    html = c.get(resp.headers["location"]).text
    assert 'id="flash"' in html
    events = html.split('id="events"')[1]
    assert 'data-kind="cancelled"' in events and ": wrong dataset uploaded" in events
    assert 'id="cancel-form"' not in html
    audit = world.http.get(
        "/v1/audit/events", params={"action": "training_job.cancel"}, headers=world.ops.headers
    ).json()["items"]
    assert [e["details"]["reason"] for e in audit] == ["wrong dataset uploaded"]
    assert audit[0]["target_id"] == job_id
    assert f"by {audit[0]['actor']}: wrong dataset uploaded" in events
    # a second cancel is refused: the job is finished
    assert c.post(url, {"reason": "again please"}).status_code == 409


def test_cancelling_a_running_job_records_the_reason_on_the_request(
    jw: JobWorld, world: World
) -> None:
    job_id = new_job(jw)
    update_job(world, job_id, status=JobStatus.RUNNING)
    c = ConsoleClient(world, world.ops)
    resp = c.post(f"/console/t/acme/jobs/{job_id}/cancel", {"reason": "runaway loss"})
    assert resp.status_code == 303
    job = jw.job(job_id)
    assert job["status"] == "running" and job["cancel_requested"] is True
    last = [e for e in job["events"] if e["kind"] == "cancel_requested"]
    assert last and last[0]["message"].endswith(": runaway loss")
    html = c.get(f"/console/t/acme/jobs/{job_id}").text
    assert 'id="cancel-requested"' in html and 'id="cancel-form"' not in html


def test_auditor_sees_no_cancel_form_and_a_forged_cancel_is_refused(
    jw: JobWorld, world: World
) -> None:
    job_id = new_job(jw)
    auditor = ConsoleClient(world, world.auditor)
    html = auditor.get(f"/console/t/acme/jobs/{job_id}").text
    assert 'class="action"' not in html and "Cancel job" not in html
    resp = auditor.post(f"/console/t/acme/jobs/{job_id}/cancel", {"reason": "forged by auditor"})
    assert resp.status_code == 403
    globex = ConsoleClient(world, world.tenant("globex"))
    resp = globex.post(f"/console/t/acme/jobs/{job_id}/cancel", {"reason": "not my job"})
    assert resp.status_code == 404
    forged = ConsoleClient(world, jw.acme)
    raw = forged.http.post(
        f"/console/t/acme/jobs/{job_id}/cancel",
        data={"csrf": "forged", "reason": "no csrf here"},
        follow_redirects=False,
    )
    assert raw.status_code == 403
    assert jw.job(job_id)["status"] == "queued"


def test_job_lists_for_ops_and_tenants(jw: JobWorld, world: World) -> None:
    queued = new_job(jw)
    other = new_job(jw)
    update_job(world, other, status=JobStatus.FAILED)
    ops = ConsoleClient(world, world.ops)
    html = ops.get("/console/jobs").text
    assert 'id="jobs"' in html
    assert re.findall(r'<tr data-job="([^"]+)"', html) == [other, queued]  # newest first
    assert f'href="/console/t/acme/jobs/{queued}"' in html
    only = ops.get("/console/jobs", params={"status": "queued"}).text
    assert re.findall(r'<tr data-job="([^"]+)"', only) == [queued]
    assert ops.get("/console/jobs", params={"status": "bogus"}).status_code == 422
    mine = ConsoleClient(world, jw.acme).get("/console/t/acme/jobs", params={"status": "failed"})
    assert re.findall(r'<tr data-job="([^"]+)"', mine.text) == [other]
    recent = ConsoleClient(world, jw.acme).get("/console/t/acme").text
    assert queued in recent.split('id="recent-jobs"')[1]
    assert ConsoleClient(world, jw.acme).get("/console/t/acme/jobs/not-a-uuid").status_code == 404


def test_thinning_keeps_the_ends_and_caps_the_points() -> None:
    points = [(float(i), 1.0 / (i + 1)) for i in range(5000)]
    thinned = thin(points)
    assert len(thinned) == 2000 and thinned[0] == points[0] and thinned[-1] == points[-1]
    assert thin(points[:10]) == points[:10]
