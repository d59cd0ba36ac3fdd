"""The fair training queue end to end: a real Celery worker process on the Redis broker, the
registry process, PostgreSQL and the S3 server. Jobs are queued while no worker consumes (the
doorbells wait in Redis), then one worker is started and runs them all; the order of the jobs'
`started_at` is the order the worker claimed them in (registry/training/queueing.py).

The worker is `loraplex worker` as deployed: the solo pool, one job at a time (the platform's
two-thread worker would train two jobs at once in one process). A FIFO queue would start
A, A, A, B; the fair one starts A, B, A, A. Each test uses tenants of its own."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import time
from typing import Any

import pytest

from registry.auth.principal import Principal
from registry.db import make_engine, make_sessionmaker, run_unit_of_work
from registry.settings import Settings
from registry.tasks import CeleryQueue
from registry.tenants.repository import TenantRepository
from registry.training.schemas import TrainingJobCreate
from registry.training.service import training
from tests.services import _die_with
from tests.workers.platform import CLI, DONE, Platform, Worker
from workers.devmodel.samples import sample_rows, to_jsonl

pytestmark = pytest.mark.slow
TINY = {"max_steps": 4, "epochs": 1, "batch_size": 4, "rank": 4, "max_seq_length": 128}


class SoloWorker(Worker):
    """`loraplex worker` with its defaults: the solo pool, training and default queues."""

    def __init__(self, p: Platform) -> None:
        self.log = p.live.home / "worker.log"  # where `Platform.worker_log` reads
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*CLI, "worker"],
                env=p.live.env,
                cwd=self.log.parent,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with(signal.SIGKILL),
            )
        p.workers.append(self)  # stopped with the platform


class Tenant:
    """A tenant with a client of its own, one dataset, and adapters on the tiny base model."""

    def __init__(self, p: Platform, slug: str) -> None:
        self.p, self.slug = p, slug
        p.ok(p.http.post("/v1/tenants", json={"slug": slug, "display_name": slug}, headers=p.ops))
        client = p.ok(p.http.post(f"/v1/tenants/{slug}/clients", json={}, headers=p.ops))
        self.h = p.live.bearer(client["client_id"], client["client_secret"])
        self.dataset = p.ok(
            p.http.post(
                f"/v1/tenants/{slug}/datasets",
                data={"name": "orders"},
                files={"file": ("orders.jsonl", to_jsonl(sample_rows("orders", 60, seed=3)))},
                headers=self.h,
            )
        )

    def adapter(self, name: str) -> str:
        body = {"name": name, "base_model": "tiny", "training": TINY}
        self.p.ok(self.p.http.post(f"/v1/tenants/{self.slug}/adapters", json=body, headers=self.h))
        return name

    def job(self, adapter: str) -> str:
        body = {"adapter": adapter, "dataset_ids": [self.dataset["id"]]}
        url = f"/v1/tenants/{self.slug}/training-jobs"
        return str(self.p.ok(self.p.http.post(url, json=body, headers=self.h))["id"])

    def wait(self, job_id: str, timeout: float = 400) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        url = f"/v1/tenants/{self.slug}/training-jobs/{job_id}"
        while (job := self.p.ok(self.p.http.get(url, headers=self.h)))["status"] not in DONE:
            assert time.monotonic() < deadline, f"{job}\n{self.p.worker_log()[-4000:]}"
            time.sleep(0.5)
        assert job["status"] == "succeeded", f"{job}\n{self.p.worker_log()[-4000:]}"
        return job


def _hold_workers(p: Platform) -> None:
    """Stop every worker: from now on TRAIN messages wait in Redis."""
    for worker in p.workers:
        worker.stop()


def _start_order(jobs: dict[str, tuple[Tenant, str]]) -> list[str]:
    """Run the queued jobs on a fresh worker to the end; their labels by `started_at`."""
    p = next(iter(jobs.values()))[0].p
    SoloWorker(p)
    done = {label: tenant.wait(job_id) for label, (tenant, job_id) in jobs.items()}
    started = {label: dt.datetime.fromisoformat(j["started_at"]) for label, j in done.items()}
    assert len(set(started.values())) == len(started), started
    return sorted(started, key=started.__getitem__)


def test_a_tenant_queued_after_another_ones_backlog_starts_second(platform: Platform) -> None:
    p = platform
    a, b = Tenant(p, "ant"), Tenant(p, "bee")
    names = [a.adapter(f"a{i}") for i in range(3)] + [b.adapter("b0")]
    _hold_workers(p)
    jobs = {name: (a, a.job(name)) for name in names[:3]}
    jobs["b0"] = (b, b.job("b0"))  # queued last, after the whole of A's backlog
    assert _start_order(jobs) == ["a0", "b0", "a1", "a2"]


def test_a_drift_job_queued_after_scheduled_ones_starts_first(platform: Platform) -> None:
    p = platform
    sched, drift = Tenant(p, "cow"), Tenant(p, "dog")
    names = [sched.adapter(f"s{i}") for i in range(2)] + [drift.adapter("d0")]
    _hold_workers(p)
    # jobs as beat's schedule tick and drift pass make them: the training service, with the
    # trigger, on the registry's database and broker
    env = p.live.env
    settings = Settings(
        database_url=env["LORAPLEX_DATABASE_URL"], broker_url=env["LORAPLEX_BROKER_URL"]
    )
    engine = make_engine(settings.resolved_database_url)
    queue = CeleryQueue(settings)
    jobs: dict[str, tuple[Tenant, str]] = {}
    try:
        for tenant, name, trigger in (
            (sched, names[0], "schedule"),
            (sched, names[1], "schedule"),
            (drift, names[2], "drift"),
        ):
            for session in run_unit_of_work(make_sessionmaker(engine)):
                row = TenantRepository(session).get_by_slug(tenant.slug)
                assert row is not None
                data = TrainingJobCreate(adapter=name, dataset_ids=[tenant.dataset["id"]])
                job = training.create(
                    session,
                    actor=Principal.local_operator(),
                    tenant=row,
                    data=data,
                    settings=settings,
                    queue=queue,
                    trigger=trigger,
                )
                jobs[name] = (tenant, str(job.id))
    finally:
        engine.dispose()
    order = _start_order(jobs)
    assert order[0] == "d0", order
    assert order[1:] == ["s0", "s1"], order  # then the scheduled ones, oldest first
