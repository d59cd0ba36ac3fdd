"""`loraplex worker` and `loraplex jobs ...`: Celery workers and job housekeeping."""

from __future__ import annotations

import json

import typer

jobs_app = typer.Typer(no_args_is_help=True, help="Training job housekeeping")


def worker(
    queues: str = typer.Option("training,default", help="comma-separated queues to consume"),
    concurrency: int = typer.Option(1, help="tasks at once (one training job per GPU)"),
    pool: str = typer.Option("solo", help="solo | threads | prefork"),
    beat: bool = typer.Option(False, help="also run the periodic scheduler (one per cluster)"),
) -> None:
    """Run a Celery worker (needs LORAPLEX_BROKER_URL)."""
    from workers.celery_app import app

    argv = ["worker", f"--queues={queues}", f"--concurrency={concurrency}", f"--pool={pool}"]
    argv += ["--loglevel=INFO", "--without-gossip", "--without-mingle"]
    if beat:
        argv.append("--beat")
    app.worker_main(argv)


def beat() -> None:
    """Run the periodic scheduler (exactly one per deployment): the job reaper, and later the
    schedule and drift ticks."""
    from registry.settings import get_settings
    from workers.celery_app import app

    home = get_settings().home_dir
    home.mkdir(parents=True, exist_ok=True)
    app.Beat(loglevel="INFO", schedule=str(home / "celerybeat-schedule")).run()


@jobs_app.command("reap")
def reap() -> None:
    """Retry or fail jobs whose worker stopped renewing its lease (what beat runs periodically)."""
    from workers.context import get_context
    from workers.reaper import reap as run

    typer.echo(json.dumps(run(get_context())))
