"""A job's events, checkpoints and finished state through the official client: paging with
`after` and `has_more`, levels and metrics data, checkpoint names, what a succeeded or failed
training job shows, and pause/resume."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from registry.db import run_unit_of_work
from registry.finetuning import ids
from registry.models import AdapterVersion, TenantFile, TrainingCheckpoint, TrainingJob
from registry.tasks import TRAIN
from registry.training.service import add_event
from tests.conftest import Caller, World
from tests.registry.finetuning.test_jobs import FtWorld


@pytest.fixture
def ft(world: World, tmp_path: Path, openai_for: Callable[[Caller], OpenAI]) -> FtWorld:
    return FtWorld(world, tmp_path / "tiny-base", openai_for)


def _with_job(ft: FtWorld, job_id: str, change) -> None:  # type: ignore[no-untyped-def]
    for session in run_unit_of_work(ft.world.stack.app.state.sessionmaker):
        job = session.get(TrainingJob, ids.decode(ids.JOB, job_id))
        assert job is not None
        change(session, job)


def test_events_page_newest_first_with_after(ft: FtWorld) -> None:
    job = ft.client.fine_tuning.jobs.create(model="tiny", training_file=ft.file(10))

    def add(session, row) -> None:  # type: ignore[no-untyped-def]
        add_event(session, row, "started", "attempt 1")
        for step in range(1, 21):
            add_event(
                session,
                row,
                "metrics",
                f"Step {step}/20",
                step=step,
                total_steps=20,
                train_loss=1.0 / step,
            )
        add_event(session, row, "retrying", "worker lost")
        add_event(session, row, "failed", "out of memory")

    _with_job(ft, job.id, add)
    first = ft.client.fine_tuning.jobs.list_events(job.id, limit=10)
    assert len(first.data) == 10 and first.has_more
    assert [e.level for e in first.data[:2]] == ["error", "warn"]
    assert first.data[0].message == "The job failed: out of memory"
    assert first.data[0].type == "message"
    metric = first.data[2]
    assert metric.type == "metrics" and metric.level == "info"
    assert isinstance(metric.data, dict) and metric.data["step"] == 20
    seen = [e.id for e in first.data]
    page = first
    while page.has_more:
        page = ft.client.fine_tuning.jobs.list_events(job.id, limit=10, after=page.data[-1].id)
        seen += [e.id for e in page.data]
    numbers = [int(i.removeprefix("ftevent-")) for i in seen]
    assert numbers == sorted(numbers, reverse=True) and len(set(numbers)) == len(numbers)
    assert len(numbers) == 23 + 3  # ours + queued, validating, validated
    assert page.data[-1].message.startswith("version 1 queued")
    auto = [e.id for e in ft.client.fine_tuning.jobs.list_events(job.id, limit=7)]
    assert auto == seen  # the client's auto-paging follows `after`
    with pytest.raises(openai.BadRequestError) as err:
        ft.client.fine_tuning.jobs.list_events(job.id, after="nope")
    assert err.value.param == "after"


def test_checkpoints_newest_step_first(ft: FtWorld) -> None:
    job = ft.client.fine_tuning.jobs.create(model="tiny", training_file=ft.file(10), suffix="s")

    def add(session, row) -> None:  # type: ignore[no-untyped-def]
        version = session.get(AdapterVersion, row.version_id)
        for step in (4, 8, 12):
            session.add(
                TrainingCheckpoint(
                    tenant_id=row.tenant_id,
                    job_id=row.id,
                    adapter_id=row.adapter_id,
                    version_id=row.version_id,
                    base_model_id=version.base_model_id,
                    step=step,
                    metrics={"step": step, "train_loss": 0.5, "valid_loss": 0.4, "other": 1},
                    artifact_prefix=f"x/step-{step}",
                    manifest={},
                    manifest_digest="0" * 64,
                    size_bytes=1,
                )
            )

    _with_job(ft, job.id, add)
    page = ft.client.fine_tuning.jobs.checkpoints.list(job.id, limit=2)
    assert [c.step_number for c in page.data] == [12, 8] and page.has_more
    short = job.id.removeprefix("ftjob-")[:8]
    name = f"ft:tiny:acme:s:{short}:ckpt-step-12"
    top = page.data[0]
    assert top.fine_tuned_model_checkpoint == name and top.fine_tuning_job_id == job.id
    assert top.metrics.valid_loss == 0.4 and top.metrics.step == 12
    rest = ft.client.fine_tuning.jobs.checkpoints.list(job.id, after=page.data[-1].id)
    assert [c.step_number for c in rest.data] == [4] and not rest.has_more


def test_succeeded_and_failed_jobs_show_their_outcome(ft: FtWorld) -> None:
    file_id = ft.file(10)
    job = ft.client.fine_tuning.jobs.create(model="tiny", training_file=file_id)
    result_id = uuid.uuid4()

    def succeed(session, row) -> None:  # type: ignore[no-untyped-def]
        version = session.get(AdapterVersion, row.version_id)
        version.manifest = {"files": {"adapter_model.safetensors": {"sha256": "ab" * 32}}}
        row.status, row.finished_at = "succeeded", dt.datetime.now(dt.UTC)
        row.result = {"training": {"train_tokens": 1234}}
        session.add(
            TenantFile(
                id=result_id,
                tenant_id=row.tenant_id,
                filename="step_metrics.csv",
                purpose="fine-tune-results",
                status="processed",
                job_id=row.id,
                created_by="t",
            )
        )

    _with_job(ft, job.id, succeed)
    done = ft.client.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded" and done.trained_tokens == 1234
    assert done.fine_tuned_model == f"ft:tiny:acme::{job.id.removeprefix('ftjob-')[:8]}"
    assert done.result_files == [ids.encode(ids.FILE, result_id)]
    assert done.loraplex["adapter_digest"] == "sha256:" + "ab" * 32  # type: ignore[attr-defined]
    with pytest.raises(openai.BadRequestError):
        ft.client.fine_tuning.jobs.pause(job.id)

    other = ft.client.fine_tuning.jobs.create(model="tiny", training_file=file_id)

    def fail(session, row) -> None:  # type: ignore[no-untyped-def]
        row.status, row.error = "failed", "CUDA out of memory"

    _with_job(ft, other.id, fail)
    failed = ft.client.fine_tuning.jobs.retrieve(other.id)
    assert failed.status == "failed" and failed.fine_tuned_model is None
    assert failed.error is not None and failed.error.code == "training_failed"
    assert failed.error.message == "CUDA out of memory" and failed.error.param is None


def test_running_job_estimates_its_finish(ft: FtWorld) -> None:
    job = ft.client.fine_tuning.jobs.create(model="tiny", training_file=ft.file(10))
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=100)

    def run(session, row) -> None:  # type: ignore[no-untyped-def]
        row.status, row.started_at = "running", started
        row.progress = {"step": 10, "total_steps": 40}

    _with_job(ft, job.id, run)
    running = ft.client.fine_tuning.jobs.retrieve(job.id)
    assert running.status == "running" and running.estimated_finish is not None
    assert abs(running.estimated_finish - (started.timestamp() + 400)) < 30


def test_pause_and_resume_a_queued_job(ft: FtWorld) -> None:
    job = ft.client.fine_tuning.jobs.create(model="tiny", training_file=ft.file(10))
    paused = ft.client.fine_tuning.jobs.pause(job.id)
    assert paused.status == "paused"  # type: ignore[comparison-overlap]
    with pytest.raises(openai.BadRequestError) as err:
        ft.client.fine_tuning.jobs.pause(job.id)
    assert err.value.code == "invalid_state"
    ft.world.stack.tasks.sent.clear()
    resumed = ft.client.fine_tuning.jobs.resume(job.id)
    assert resumed.status == "queued"
    assert [name for name, _, _ in ft.world.stack.tasks.sent] == [TRAIN]
    with pytest.raises(openai.BadRequestError) as err:
        ft.client.fine_tuning.jobs.resume(job.id)
    assert err.value.code == "invalid_state"
    paused = ft.client.fine_tuning.jobs.pause(job.id)
    assert ft.client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
