"""Fine-tuning jobs through the official client, in-process: create (auto and explicit
hyperparameters, refusals in OpenAI's error shape, a refused file), retrieve, list, cancel, and
another tenant's view."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from registry.db import run_unit_of_work
from registry.finetuning import ids
from registry.models import TenantFile, TrainingJob
from registry.tasks import TRAIN
from tests.conftest import Caller, World
from tests.lora_files import make_base_model


def rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": f"a{i}"},
            ]
        }
        for i in range(n)
    ]


class FtWorld:
    """Base model 'tiny', tenant acme with its client, and helpers to make files."""

    def __init__(self, world: World, base_dir: Path, openai_for: Callable[[Caller], OpenAI]):
        self.world = world
        make_base_model(base_dir)
        resp = world.http.post(
            "/v1/base-models",
            json={"name": "tiny", "uri": str(base_dir)},
            headers=world.ops.headers,
        )
        assert resp.status_code == 201, resp.text
        self.acme = world.tenant("acme")
        self.client = openai_for(self.acme)
        self.openai_for = openai_for

    def file(self, n: int = 10, *, caller: Caller | None = None, name: str = "chat") -> str:
        """A processed fine-tune file of `n` rows (a dataset version behind it)."""
        caller = caller or self.acme
        body = "".join(json.dumps(r) + "\n" for r in rows(n)).encode()
        resp = self.world.http.post(
            f"/v1/tenants/{caller.slug}/datasets",
            data={"name": name},
            files={"file": ("d.jsonl", body)},
            headers=caller.headers,
        )
        assert resp.status_code == 201, resp.text
        ds = resp.json()
        return self._row(caller, status="processed", dataset_id=uuid.UUID(ds["id"]), size=len(body))

    def bad_file(self, line: int = 3) -> str:
        message = f"line {line}: not valid JSON"
        error = {"code": "invalid_file", "message": message, "param": None, "line": line}
        return self._row(self.acme, status="error", error=error, size=10)

    def _row(self, caller: Caller, *, size: int, **fields: Any) -> str:
        for session in run_unit_of_work(self.world.stack.app.state.sessionmaker):
            row = TenantFile(
                tenant_id=uuid.UUID(caller.tenant_id),
                filename="d.jsonl",
                purpose="fine-tune",
                bytes=size,
                created_by="test",
                **fields,
            )
            session.add(row)
            session.flush()
            file_id = ids.encode(ids.FILE, row.id)
        return file_id

    def training_job(self, job_id: str) -> TrainingJob:
        row_id = ids.decode(ids.JOB, job_id)
        for session in run_unit_of_work(self.world.stack.app.state.sessionmaker):
            job = session.get(TrainingJob, row_id)
            assert job is not None
            session.expunge(job)
        return job  # type: ignore[return-value]


@pytest.fixture
def ft(world: World, tmp_path: Path, openai_for: Callable[[Caller], OpenAI]) -> FtWorld:
    return FtWorld(world, tmp_path / "tiny-base", openai_for)


def test_auto_hyperparameters_are_chosen_and_shown(ft: FtWorld) -> None:
    file_id = ft.file(10)
    job = ft.client.fine_tuning.jobs.create(model="tiny", training_file=file_id)
    assert job.status == "queued" and job.fine_tuned_model is None and job.error is None
    # 10 rows: ceil(300 / 10) = 30 passes, capped at 10; batches of min(8, 10)
    assert job.hyperparameters.n_epochs == 10 and job.hyperparameters.batch_size == 8
    assert job.hyperparameters.learning_rate_multiplier == 1.0
    assert job.method is not None and job.method.type == "supervised"
    assert job.organization_id == "acme" and job.training_file == file_id
    assert 0 <= job.seed < 2**32 and job.user_provided_suffix is None  # type: ignore[attr-defined]
    extra = job.loraplex  # type: ignore[attr-defined]
    assert extra == {"adapter": "ft-tiny", "version": 1, "adapter_digest": None}
    train = ft.training_job(job.id)
    assert train.id.hex == job.id.removeprefix("ftjob-")
    assert train.config["epochs"] == 10 and train.config["batch_size"] == 8
    assert train.config["learning_rate"] == pytest.approx(2e-4) and train.config["seed"] == job.seed
    assert train.keep_checkpoints == 3 and train.trigger == "manual"
    assert train.trigger_ref == {"api": "openai", "fine_tuning_job": job.id}
    assert ft.world.stack.tasks.sent == [(TRAIN, [str(train.id)], 0)]


def test_explicit_hyperparameters_suffix_seed_metadata(ft: FtWorld) -> None:
    file_id = ft.file(120)
    valid = ft.file(4, name="held")
    hyper = {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.5}
    job = ft.client.fine_tuning.jobs.create(
        model="tiny",
        training_file=file_id,
        validation_file=valid,
        suffix="support.v1",
        seed=42,
        metadata={"team": "care"},
        method={"type": "supervised", "supervised": {"hyperparameters": hyper}},  # type: ignore[arg-type]
    )
    assert job.hyperparameters.model_dump() == hyper and job.seed == 42
    assert job.metadata == {"team": "care"} and job.user_provided_suffix == "support.v1"  # type: ignore[attr-defined]
    assert job.validation_file == valid
    assert job.loraplex["adapter"] == "ft-tiny-support.v1"  # type: ignore[attr-defined]
    train = ft.training_job(job.id)
    assert (train.config["epochs"], train.config["batch_size"], train.config["seed"]) == (2, 4, 42)
    assert train.config["learning_rate"] == pytest.approx(1e-4)
    assert train.validation_dataset_id is not None
    # legacy top-level hyperparameters; auto epochs for >= 100 rows is 3
    again = ft.client.fine_tuning.jobs.create(
        model="tiny", training_file=file_id, suffix="support.v1", hyperparameters={"batch_size": 2}
    )
    assert again.hyperparameters.n_epochs == 3 and again.hyperparameters.batch_size == 2
    assert again.loraplex["version"] == 2  # type: ignore[attr-defined]
    events = ft.client.fine_tuning.jobs.list_events(job.id).data
    assert events[0].message == "Files validated, moving job to queued state"
    assert any(e.message == f"Validating validation file: {valid}" for e in events)


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"suffix": "x" * 65}, "suffix", None),
        ({"suffix": "bad suffix!"}, "suffix", None),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", None),
        ({"seed": -1}, "seed", None),
        ({"method": {"type": "dpo", "dpo": {}}}, "method.type", "unsupported_method"),
        ({"method": {"type": "reinforcement"}}, "method.type", "unsupported_method"),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}}},
            "method.supervised.hyperparameters.n_epochs",
            None,
        ),
        (
            {"hyperparameters": {"learning_rate_multiplier": "fast"}},
            "hyperparameters.learning_rate_multiplier",
            None,
        ),
        ({"integrations": [{"type": "wandb"}]}, "integrations", "unsupported"),
    ],
)
def test_bad_bodies_are_400_with_param(
    ft: FtWorld, body: dict, param: str, code: str | None
) -> None:
    file_id = ft.file(10)
    with pytest.raises(openai.BadRequestError) as err:
        ft.client.fine_tuning.jobs.create(model="tiny", training_file=file_id, **body)
    assert err.value.status_code == 400 and err.value.param == param, err.value.body
    if code:
        assert err.value.code == code
    assert ft.world.stack.tasks.sent == []
    assert ft.client.fine_tuning.jobs.list().data == []


def test_unknown_model_and_others_files_are_404(ft: FtWorld) -> None:
    file_id = ft.file(10)
    with pytest.raises(openai.NotFoundError) as err:
        ft.client.fine_tuning.jobs.create(model="nope", training_file=file_id)
    assert err.value.code == "model_not_found" and err.value.param == "model"
    globex = ft.world.tenant("globex")
    theirs = ft.file(10, caller=globex)
    for bad in (theirs, "file-nope", ids.encode(ids.FILE, uuid.uuid4())):
        with pytest.raises(openai.NotFoundError) as err:
            ft.client.fine_tuning.jobs.create(model="tiny", training_file=bad)
        assert err.value.param == "training_file"
    with pytest.raises(openai.NotFoundError) as err:
        ft.client.fine_tuning.jobs.create(
            model="tiny", training_file=file_id, validation_file=theirs
        )
    assert err.value.param == "validation_file"
    assert ft.world.stack.tasks.sent == []


def test_an_invalid_file_makes_a_failed_job_without_training(ft: FtWorld) -> None:
    bad = ft.bad_file(line=3)
    job = ft.client.fine_tuning.jobs.create(model="tiny", training_file=bad)
    assert job.status == "failed" and job.error is not None
    assert job.error.code == "invalid_training_file" and job.error.param == "training_file"
    assert "line 3" in job.error.message and job.finished_at is not None
    assert job.loraplex == {"adapter": None, "version": None, "adapter_digest": None}  # type: ignore[attr-defined]
    assert ft.world.stack.tasks.sent == []
    assert ft.client.fine_tuning.jobs.retrieve(job.id).status == "failed"
    events = ft.client.fine_tuning.jobs.list_events(job.id)
    assert [e.level for e in events.data] == ["error", "info"] and not events.has_more
    with pytest.raises(openai.BadRequestError) as err:
        ft.client.fine_tuning.jobs.cancel(job.id)
    assert err.value.code == "invalid_state"
    adapters = ft.world.http.get("/v1/tenants/acme/adapters", headers=ft.acme.headers).json()
    assert adapters["items"] == []


def test_retrieve_list_paging_and_metadata_filter(ft: FtWorld) -> None:
    file_id = ft.file(10)
    made = [
        ft.client.fine_tuning.jobs.create(
            model="tiny", training_file=file_id, metadata={"n": str(i), "even": str(i % 2 == 0)}
        )
        for i in range(5)
    ]
    got = ft.client.fine_tuning.jobs.retrieve(made[2].id)
    assert got.id == made[2].id and got.metadata == {"n": "2", "even": "True"}
    page = ft.client.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in page.data] == [made[4].id, made[3].id] and page.has_more
    page = ft.client.fine_tuning.jobs.list(limit=2, after=made[3].id)
    assert [j.id for j in page.data] == [made[2].id, made[1].id] and page.has_more
    page = ft.client.fine_tuning.jobs.list(limit=2, after=made[1].id)
    assert [j.id for j in page.data] == [made[0].id] and not page.has_more
    everything = [j.id for j in ft.client.fine_tuning.jobs.list(limit=2)]  # auto-paging
    assert everything == [j.id for j in reversed(made)]
    evens = ft.client.fine_tuning.jobs.list(metadata={"even": "True"})
    assert [j.id for j in evens.data] == [made[4].id, made[2].id, made[0].id]


def test_cancel_queued_then_again_is_400(ft: FtWorld) -> None:
    job = ft.client.fine_tuning.jobs.create(model="tiny", training_file=ft.file(10))
    done = ft.client.fine_tuning.jobs.cancel(job.id)
    assert done.status == "cancelled" and done.finished_at is not None
    with pytest.raises(openai.BadRequestError) as err:
        ft.client.fine_tuning.jobs.cancel(job.id)
    assert err.value.code == "invalid_state"


def test_another_tenant_and_ops_cannot_reach_a_job(ft: FtWorld) -> None:
    job = ft.client.fine_tuning.jobs.create(model="tiny", training_file=ft.file(10))
    globex = ft.openai_for(ft.world.tenant("globex"))
    calls = [
        lambda: globex.fine_tuning.jobs.retrieve(job.id),
        lambda: globex.fine_tuning.jobs.cancel(job.id),
        lambda: globex.fine_tuning.jobs.list_events(job.id),
        lambda: globex.fine_tuning.jobs.checkpoints.list(job.id),
        lambda: ft.client.fine_tuning.jobs.retrieve("ftjob-nope"),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError):
            call()
    assert globex.fine_tuning.jobs.list().data == []
    ops = ft.openai_for(ft.world.ops)
    with pytest.raises(openai.PermissionDeniedError):
        ops.fine_tuning.jobs.list()
    with pytest.raises(openai.PermissionDeniedError):
        ops.fine_tuning.jobs.retrieve(job.id)


def test_a_refusal_after_the_adapter_was_made_stores_nothing(ft: FtWorld) -> None:
    one_row = ft.file(1)
    with pytest.raises(openai.BadRequestError) as err:
        ft.client.fine_tuning.jobs.create(model="tiny", training_file=one_row)
    assert "at least 2" in err.value.message
    adapters = ft.world.http.get("/v1/tenants/acme/adapters", headers=ft.acme.headers).json()
    assert adapters["items"] == [] and ft.world.stack.tasks.sent == []
