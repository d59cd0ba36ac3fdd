"""A fine-tuning job's result file: `step_metrics.csv` from its metrics events, served as a
`fine-tune-results` file."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import openai
import pytest
from openai import OpenAI
from sqlalchemy import func, select

from registry.finetuning import ids
from registry.finetuning.results import render_rows, write_result_file
from registry.models import TrainingJob, TrainingJobEvent
from registry.models.finetuning import FineTuningJob, TenantFile
from tests.conftest import World
from tests.registry.training.conftest import JobWorld

Client = Callable[..., OpenAI]
CHAT = b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'


def metrics(step: int, loss: float, valid: float | None = None) -> dict[str, object]:
    data: dict[str, object] = {
        "step": step,
        "total_steps": 3,
        "train_loss": loss,
        "train_mean_token_accuracy": 0.5,
    }
    if valid is not None:
        data |= {"valid_loss": valid, "valid_mean_token_accuracy": 0.25}
    return data


def test_render_keeps_the_latest_event_per_step_in_step_order() -> None:
    csv = render_rows([metrics(2, 9.0), metrics(1, 1.5), metrics(2, 0.75, valid=1.25), {}])
    assert csv.decode().splitlines() == [
        "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy",
        "1,1.5,0.5,,",
        "2,0.75,0.5,1.25,0.25",
    ]


def test_result_file_is_written_once_and_served(
    world: World, tmp_path: Path, openai_for: Client
) -> None:
    jw = JobWorld(world, tmp_path / "tiny-base")
    resp = jw.create_job()
    assert resp.status_code == 201, resp.text
    job_id = uuid.UUID(resp.json()["id"])
    other = jw.create_job()  # a training job no fine-tuning job asked for
    client = openai_for(jw.acme)
    training = client.files.create(file=("t.jsonl", CHAT), purpose="fine-tune")
    store = world.stack.store
    with world.stack.session() as session:
        job = session.get(TrainingJob, job_id)
        assert job is not None
        write_result_file(session, store, job)  # no fine-tuning job yet: nothing
        assert session.execute(select(func.count()).select_from(TenantFile)).scalar_one() == 1
        session.add(
            FineTuningJob(
                id=job.id,
                tenant_id=job.tenant_id,
                training_job_id=job.id,
                adapter_id=job.adapter_id,
                model="tiny",
                fine_tuned_model=f"ft:tiny:acme::{job.id.hex[:8]}",
                training_file_id=ids.decode(ids.FILE, training.id),
                seed=7,
                method={"type": "supervised"},
                hyperparameters={},
                created_by=jw.acme.client_id,
            )
        )
        for data in (metrics(1, 2.0), metrics(2, 1.0, valid=1.5)):
            session.add(
                TrainingJobEvent(job_id=job.id, tenant_id=job.tenant_id, kind="metrics", data=data)
            )
        session.add(TrainingJobEvent(job_id=job.id, tenant_id=job.tenant_id, kind="started"))
        session.flush()
        write_result_file(session, store, job)
        write_result_file(session, store, job)  # idempotent
        other_job = session.get(TrainingJob, uuid.UUID(other.json()["id"]))
        assert other_job is not None
        write_result_file(session, store, other_job)  # no fine-tuning job: no-op
        session.commit()

    results = client.files.list(purpose="fine-tune-results").data
    assert len(results) == 1
    f = results[0]
    assert f.filename == "step_metrics.csv" and f.status == "processed"
    key = f"tenants/{jw.acme.tenant_id}/files/{f.id.removeprefix('file-')}.csv"
    assert list(store.list_keys(f"tenants/{jw.acme.tenant_id}/files/")) == [key]
    body = client.files.content(f.id).content
    assert f.bytes == len(body)
    assert body.decode().splitlines() == [
        "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy",
        "1,2.0,0.5,,",
        "2,1.0,0.5,1.5,0.25",
    ]
    store.delete(key)  # the object lost: rendered again from the events
    assert client.files.content(f.id).content == body
    with pytest.raises(openai.NotFoundError):
        openai_for(world.tenant("globex")).files.content(f.id)
