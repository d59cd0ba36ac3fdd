"""OpenAI fine-tuning conformance, driven by the official `openai` client only (no hand-written
HTTP), on real services: the session's serving stack (registry, vLLM engine, PostgreSQL, S3),
a gateway with a broker and a Celery worker on Redis, and a tenant of its own.

The whole flow a script written for OpenAI runs: upload files, create a job with "auto"
hyperparameters, watch its events page by page with `after`, list its checkpoints, call the
fine-tuned model and a checkpoint through the gateway, list/retrieve/delete models; a bad file
surfaces as the job's `error` naming the line; cancel; pause and resume give the same adapter
digest as an uninterrupted run with the same seed; another tenant gets 404s in OpenAI's classes.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.conftest import require_env
from tests.services import free_port
from tests.serving.stack import CLI, Service, ServingStack
from tests.workers.platform import Worker
from workers.devmodel.samples import sample_rows, to_jsonl

pytestmark = pytest.mark.slow
T = "hooli"
DONE = {"succeeded", "failed", "cancelled"}
# Enough steps that a pause lands mid-run (the heartbeat relays it within about a second).
PAUSABLE = {"n_epochs": 4, "batch_size": 2, "learning_rate_multiplier": 4}


class FineTuning:
    """A gateway that can queue training (broker set) and a worker, on the session's stack."""

    def __init__(self, stack: ServingStack, redis_url: str) -> None:
        self.s = stack
        env = {**stack.env, "LORAPLEX_BROKER_URL": redis_url, "LORAPLEX_EVAL_MAX_GENERATE": "2"}
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        home = stack.live.home
        self.services: list[Service] = []
        self.worker: Worker | None = None
        try:
            gateway = Service(
                "ft-gateway",
                [*CLI, "serve", "gateway", "--port", str(port)],
                {**env, "LORAPLEX_GATEWAY_METRICS_PORT": str(free_port())},
                home / "ft-gateway.log",
            )
            self.services.append(gateway)
            gateway.wait_http(f"{self.url}/healthz", 60)
            self.worker = Worker(env, home / "ft-worker.log")
            self.token = self._tenant(T)
        except BaseException:
            self.close()
            raise

    def _tenant(self, slug: str) -> str:
        http, ops = self.s.http, self.s.ops
        self.s.ok(http.post("/v1/tenants", json={"slug": slug, "display_name": slug}, headers=ops))
        client = self.s.ok(http.post(f"/v1/tenants/{slug}/clients", json={}, headers=ops))
        bearer = self.s.live.bearer(client["client_id"], client["client_secret"])
        self.s.tokens[slug] = bearer
        return bearer["Authorization"].removeprefix("Bearer ")

    def client(self, token: str | None = None) -> OpenAI:
        return OpenAI(
            base_url=f"{self.url}/v1",
            api_key=token or self.token,
            max_retries=0,
            http_client=httpx.Client(trust_env=False, timeout=120),
        )

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        for service in self.services:
            service.stop()

    def logs(self) -> str:
        home = self.s.live.home
        worker = (home / "ft-worker.log").read_text(errors="replace")[-3000:]
        gateway = (home / "ft-gateway.log").read_text(errors="replace")[-2000:]
        return f"--- worker\n{worker}\n--- gateway\n{gateway}"


@pytest.fixture(scope="module")
def ft(serving: ServingStack) -> Iterator[FineTuning]:
    live = FineTuning(serving, require_env("LORAPLEX_TEST_REDIS_URL"))
    try:
        yield live
    finally:
        live.close()


def wait(ft: FineTuning, job_id: str, until: set[str] = DONE, timeout: float = 600) -> Any:
    client = ft.client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in until:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {job.status}\n{ft.logs()}")


def upload(client: OpenAI, name: str, data: bytes) -> Any:
    return client.files.create(file=(name, io.BytesIO(data)), purpose="fine-tune")


@pytest.fixture(scope="module")
def files(ft: FineTuning) -> dict[str, Any]:
    client = ft.client()
    train = upload(client, "orders-train.jsonl", to_jsonl(sample_rows("orders", 24, seed=11)))
    valid = upload(client, "orders-valid.jsonl", to_jsonl(sample_rows("orders", 6, seed=12)))
    return {"train": train, "valid": valid}


def test_files_round_trip_and_a_bad_file_fails_its_job_naming_the_line(
    ft: FineTuning, files: dict[str, Any]
) -> None:
    client = ft.client()
    train = files["train"]
    assert (train.object, train.purpose, train.status) == ("file", "fine-tune", "processed")
    assert train.filename == "orders-train.jsonl" and train.bytes > 0
    assert client.files.retrieve(train.id).id == train.id
    content = client.files.content(train.id).read()
    assert len(content.splitlines()) == 24

    first = client.files.list(limit=1)
    assert len(first.data) == 1 and first.has_more
    rest = client.files.list(limit=10, after=first.data[0].id)
    listed = [f.id for f in first.data] + [f.id for f in rest.data]
    assert {train.id, files["valid"].id} <= set(listed)

    rows = to_jsonl(sample_rows("orders", 4, seed=13)).splitlines()
    rows[2] = b'{"messages": [{"role": "user", "content": "no answer, and no closing brace"}'
    bad = upload(client, "broken.jsonl", b"\n".join(rows) + b"\n")
    assert bad.status == "error" and "line 3" in (bad.status_details or "").lower()
    assert client.files.retrieve(bad.id).status == "error"

    job = client.fine_tuning.jobs.create(model="tiny", training_file=bad.id)
    assert job.status == "failed" and job.error is not None
    assert job.error.code == "invalid_training_file" and job.error.param == "training_file"
    assert "line 3" in job.error.message.lower()
    assert job.fine_tuned_model is None

    spare = upload(client, "spare.jsonl", to_jsonl(sample_rows("support", 3, seed=14)))
    gone = client.files.delete(spare.id)
    assert (gone.id, gone.object, gone.deleted) == (spare.id, "file", True)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(spare.id)


def test_a_job_with_auto_hyperparameters_end_to_end(ft: FineTuning, files: dict[str, Any]) -> None:
    client = ft.client()
    job = client.fine_tuning.jobs.create(
        model="tiny",
        training_file=files["train"].id,
        validation_file=files["valid"].id,
        suffix="desk",
        seed=7,
        metadata={"team": "orders", "ticket": "OPS-18"},
        method={
            "type": "supervised",
            "supervised": {
                "hyperparameters": {
                    "n_epochs": "auto",
                    "batch_size": "auto",
                    "learning_rate_multiplier": "auto",
                }
            },
        },
    )
    assert job.object == "fine_tuning.job" and job.status in {"validating_files", "queued"}
    assert job.model == "tiny" and job.seed == 7
    assert job.metadata == {"team": "orders", "ticket": "OPS-18"}
    assert job.user_provided_suffix == "desk" and job.fine_tuned_model is None
    chosen = job.hyperparameters
    assert isinstance(chosen.n_epochs, int) and chosen.n_epochs >= 1
    assert isinstance(chosen.batch_size, int) and isinstance(chosen.learning_rate_multiplier, float)
    assert job.id in [j.id for j in client.fine_tuning.jobs.list(limit=5).data]

    done = wait(ft, job.id)
    assert done.status == "succeeded", (done.error, ft.logs())
    ft_model = done.fine_tuned_model
    assert ft_model is not None and ft_model.startswith(f"ft:tiny:{T}:desk:")
    assert done.trained_tokens and done.trained_tokens > 0 and done.finished_at
    assert done.result_files and len(done.result_files) == 1
    csv = client.files.content(done.result_files[0]).read().decode()
    assert csv.startswith("step,train_loss")

    # events, newest first, paged with `after`; metrics events carry the step's numbers
    seen: list[Any] = []
    page = client.fine_tuning.jobs.list_events(job.id, limit=5)
    while True:
        seen += page.data
        if not page.has_more:
            break
        page = client.fine_tuning.jobs.list_events(job.id, limit=5, after=page.data[-1].id)
    assert len(seen) > 5 and len({e.id for e in seen}) == len(seen)
    assert [e.created_at for e in seen] == sorted((e.created_at for e in seen), reverse=True)
    metrics = [e for e in seen if e.type == "metrics"]
    assert metrics and all(e.level == "info" for e in metrics)
    data = metrics[0].data
    assert {"step", "train_loss", "total_steps", "train_mean_token_accuracy"} <= set(data)
    assert any("valid_loss" in (e.data or {}) for e in metrics)
    assert any("successfully completed" in e.message for e in seen)

    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert 1 <= len(checkpoints) <= 3
    newest = checkpoints[0]
    assert newest.fine_tuned_model_checkpoint == f"{ft_model}:ckpt-step-{newest.step_number}"
    assert newest.metrics.valid_loss is not None

    ids = {m.id for m in client.models.list().data}
    assert {"tiny", ft_model, newest.fine_tuned_model_checkpoint} <= ids
    assert client.models.retrieve(ft_model).owned_by == T

    question = [{"role": "user", "content": "Order 3 lamps for Ana, please."}]
    for model in (ft_model, newest.fine_tuned_model_checkpoint):
        answer = client.chat.completions.create(
            model=model, messages=question, max_tokens=8, temperature=0
        )
        assert answer.choices[0].message.content

    other = ft.client(ft._tenant("pied-piper"))
    with pytest.raises(openai.NotFoundError):
        other.files.retrieve(files["train"].id)
    with pytest.raises(openai.NotFoundError):
        other.fine_tuning.jobs.retrieve(job.id)
    with pytest.raises(openai.NotFoundError):
        other.models.retrieve(ft_model)
    with pytest.raises(openai.NotFoundError):
        other.chat.completions.create(model=ft_model, messages=question, max_tokens=2)

    deleted = client.models.delete(ft_model)
    assert deleted.deleted and deleted.id == ft_model
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(ft_model)
    time.sleep(1.0)  # the gateway reuses a resolved name for LORAPLEX_GATEWAY_RESOLVE_TTL (0.5 s)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=ft_model, messages=question, max_tokens=2)


def test_pause_and_resume_give_the_digest_of_an_uninterrupted_run(
    ft: FineTuning, files: dict[str, Any]
) -> None:
    client = ft.client()

    def create(suffix: str) -> Any:
        return client.fine_tuning.jobs.create(
            model="tiny",
            training_file=files["train"].id,
            suffix=suffix,
            seed=42,
            method={"type": "supervised", "supervised": {"hyperparameters": PAUSABLE}},
        )

    straight = create("straight")
    assert wait(ft, straight.id).status == "succeeded", ft.logs()

    paused = create("paused")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # pause once training has taken a step
        events = client.fine_tuning.jobs.list_events(paused.id, limit=5).data
        if any(e.type == "metrics" for e in events):
            break
        time.sleep(0.2)
    job = client.fine_tuning.jobs.pause(paused.id)
    assert job.status in {"running", "paused"}
    job = wait(ft, paused.id, {"paused"} | DONE)
    assert job.status == "paused", ft.logs()
    messages = [e.message for e in client.fine_tuning.jobs.list_events(paused.id).data]
    assert any("paused at step" in m for m in messages)
    resumed = client.fine_tuning.jobs.resume(paused.id)
    assert resumed.status in {"queued", "running", "succeeded"}
    finished = wait(ft, paused.id)
    assert finished.status == "succeeded", ft.logs()

    a = client.fine_tuning.jobs.retrieve(straight.id).loraplex["adapter_digest"]
    b = finished.loraplex["adapter_digest"]
    assert a and a.startswith("sha256:") and a == b
    every = [e.message for e in client.fine_tuning.jobs.list_events(paused.id, limit=50)]
    assert any("resumed from step" in m for m in every)  # the client pages on with `after`


def test_cancel_unsupported_methods_and_bad_input(ft: FineTuning, files: dict[str, Any]) -> None:
    client = ft.client()
    job = client.fine_tuning.jobs.create(
        model="tiny", training_file=files["train"].id, suffix="cancel-me"
    )
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status in {"cancelled", "running", "queued"}
    assert wait(ft, job.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(job.id)

    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(
            model="tiny",
            training_file=files["train"].id,
            method={"type": "dpo", "dpo": {"hyperparameters": {"beta": "auto"}}},
        )
    assert "not supported" in str(err.value)
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(model="tiny", training_file=files["train"].id,
                                       suffix="x" * 65)  # fmt: skip
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.create(model="no-such-base", training_file=files["train"].id)
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.create(model="tiny", training_file="file-" + "0" * 32)
