"""Redis stops before a training job is sent: the request still answers 201 (the job row is
committed, the failed send is logged), the job stays queued, and once Redis is back the
reaper re-sends it and a real Celery worker trains it exactly once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.workers.platform as platform_module
from tests.live import LiveRegistry
from tests.services import Service, start_redis
from tests.workers.platform import Platform, tiny_base_model
from workers.devmodel.samples import sample_rows, to_jsonl

RESEND_S = 3  # LORAPLEX_JOB_RESEND_SECONDS: how long a queued job waits before a re-send


@pytest.fixture
def redis() -> Iterator[list[Service]]:
    servers = [start_redis()]
    try:
        yield servers
    finally:
        servers[-1].stop()


@pytest.fixture
def platform(
    redis: list[Service], pg_admin_url: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Platform]:
    monkeypatch.setenv("LORAPLEX_JOB_RESEND_SECONDS", str(RESEND_S))
    start = platform_module.start_registry

    def quick_registry(*args: str, extra_env: dict[str, str]) -> LiveRegistry:
        # Little scoring by generation: this test is about delivery, not the adapter.
        return start(*args, extra_env={**extra_env, "LORAPLEX_EVAL_MAX_GENERATE": "1"})

    monkeypatch.setattr(platform_module, "start_registry", quick_registry)
    live = Platform(pg_admin_url, s3_endpoint, redis[0].url, tiny_base_model())
    try:
        yield live
    finally:
        live.close()


def test_job_sent_while_redis_is_down_is_resent_and_trains_once(
    platform: Platform, redis: list[Service]
) -> None:
    p = platform
    adapter = {"name": "orders", "base_model": "tiny", "training": {"epochs": 1, "rank": 4}}
    p.ok(p.http.post("/v1/tenants/acme/adapters", json=adapter, headers=p.acme))
    rows = to_jsonl(sample_rows("orders", 24, seed=1))
    dataset = p.ok(
        p.http.post(
            "/v1/tenants/acme/datasets",
            data={"name": "orders"},
            files={"file": ("orders.jsonl", rows)},
            headers=p.acme,
        )
    )
    port = int(redis[0].url.rsplit(":", 1)[1].split("/")[0])
    redis[0].stop()

    body = {
        "adapter": "orders",
        "dataset_ids": [dataset["id"]],
        "hyperparameters": {"max_steps": 2},
    }
    resp = p.http.post("/v1/tenants/acme/training-jobs", json=body, headers=p.acme)
    assert resp.status_code == 201, resp.text
    job = resp.json()
    assert job["status"] == "queued"
    assert "task.send_failed" in Path(p.live.log_path).read_text(errors="replace")

    time.sleep(RESEND_S + 2)  # past the re-send period: nothing can run it without a broker
    assert p.wait_job(job["id"], until={"queued"}, timeout=5)["attempts"] == 0

    redis.append(start_redis(port))  # empty: the lost message is not coming back
    done = p.wait_job(job["id"], timeout=180)
    assert done["status"] == "succeeded", (done["error"], done["events"])
    assert done["attempts"] == 1
    assert [e["kind"] for e in done["events"]].count("started") == 1
    versions = p.ok(p.http.get("/v1/tenants/acme/adapters/orders/versions", headers=p.acme))
    assert [v["version"] for v in versions["items"]] == [job["version"]]
