"""The Celery application: `celery -A workers.celery_app worker` or `loraplex worker`.

Queues: `training` (GPU-bound in production; run one job per worker process) and `default`.
Task bodies import the heavy ML libraries lazily, so this module is cheap to import.
"""

from __future__ import annotations

from celery import Celery
from celery.signals import setup_logging

from registry.settings import Settings, get_settings
from registry.tasks import QUEUES, periodic_tasks


def beat_schedule(settings: Settings) -> dict[str, dict[str, object]]:
    """The reaper, the retrain-schedule tick and (unless switched off) the drift pass."""
    return {key: {"task": name, "schedule": every} for key, name, every in periodic_tasks(settings)}


def make_celery(settings: Settings) -> Celery:
    if not settings.broker_url:
        raise RuntimeError(
            "LORAPLEX_BROKER_URL is not set: a Celery worker needs a broker (e.g. "
            "redis://127.0.0.1:6379/0). Without one, `loraplex up` runs tasks in-process."
        )
    app = Celery("loraplex", broker=settings.broker_url)
    app.conf.update(
        result_backend=settings.result_backend_url or settings.broker_url,
        task_default_queue="default",
        task_routes={name: {"queue": queue} for name, queue in QUEUES.items()},
        task_acks_late=False,  # a lost job is found by the reaper through its lease
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule=beat_schedule(settings),
        imports=("workers.tasks",),
    )
    return app


@setup_logging.connect
def _structured_logs(**_: object) -> None:
    from registry.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)


app = make_celery(get_settings())
