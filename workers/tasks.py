"""Celery task definitions: thin shells that call the job code with this process's context."""

from __future__ import annotations

from registry.tasks import DRIFT, REAP, SCHEDULE_TICK, TRAIN
from workers.celery_app import app
from workers.context import get_context


@app.task(name=TRAIN, bind=True)
def train(self, job_id: str) -> None:  # type: ignore[no-untyped-def]
    from workers.train_job import run_training

    run_training(get_context(), job_id, host=self.request.hostname or "worker")


@app.task(name=REAP)
def reap_jobs() -> None:
    from workers.reaper import reap

    reap(get_context())


@app.task(name=SCHEDULE_TICK)
def schedules_tick() -> None:
    from workers.periodic import run_tick

    run_tick(get_context())


@app.task(name=DRIFT)
def compute_drift() -> None:
    from workers.drift import compute_drift as run

    run(get_context())
