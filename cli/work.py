"""`loraplex worker` and `loraplex jobs ...`: Celery workers and job housekeeping."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from workers.context import WorkerContext

jobs_app = typer.Typer(no_args_is_help=True, help="Training job housekeeping")
schedules_app = typer.Typer(
    no_args_is_help=True, help="Run the retrain schedule tick here (beat's job; database access)"
)
drift_app = typer.Typer(
    no_args_is_help=True, help="Run the drift pass here (beat's job; database access)"
)


def parse_now(now: str | None) -> dt.datetime | None:
    if now is None:
        return None
    try:
        value = dt.datetime.fromisoformat(now)
    except ValueError as exc:
        raise typer.BadParameter(f"{now!r} is not ISO 8601 (e.g. 2027-01-01T02:00:00Z)") from exc
    if value.tzinfo is None:
        raise typer.BadParameter("--now needs a timezone (e.g. 2027-01-01T02:00:00Z)")
    return value.astimezone(dt.UTC)


def _drain(ctx: WorkerContext) -> None:
    """Without a broker the jobs just created run here: wait for them before exiting."""
    if ctx.settings.broker_url:
        return  # the workers run them; nothing to import or wait for here
    from cli import compose  # imported when used: `loraplex --help` stays cheap

    typer.echo("running the queued work in this process...", err=True)
    compose.drain(ctx)


def _context() -> WorkerContext:
    """Logs to stderr (stdout is the command's JSON); say where created jobs will run."""
    from cli import compose
    from cli.config import configured_settings

    settings = configured_settings()
    if not settings.broker_url:
        typer.echo(
            "no LORAPLEX_BROKER_URL: jobs this creates run in this process before it exits",
            err=True,
        )
    return compose.worker_context(settings)


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
    """Run the periodic scheduler (exactly one per deployment): the job reaper, the retrain
    schedule tick and the drift pass."""
    from registry.settings import get_settings
    from workers.celery_app import app

    home = get_settings().home_dir
    home.mkdir(parents=True, exist_ok=True)
    app.Beat(loglevel="INFO", schedule=str(home / "celerybeat-schedule")).run()


@jobs_app.command("reap")
def reap() -> None:
    """Retry or fail jobs whose worker stopped renewing its lease (what beat runs periodically)."""
    from workers.reaper import reap as run

    ctx = _context()
    typer.echo(json.dumps(run(ctx)))
    _drain(ctx)


def _broker_context() -> WorkerContext:
    """With a broker, only what sending needs: the worker context and the Celery client, not
    the app and the in-process workers (`cli.compose`) that a run without one needs."""
    from cli.config import configured_settings

    settings = configured_settings()
    if not settings.broker_url:
        return _context()
    from registry.tasks import CeleryQueue
    from workers.context import build_context

    return build_context(settings, CeleryQueue(settings))


@schedules_app.command("tick")
def schedules_tick(
    now: str = typer.Option(None, help="act as if it were this time (ISO 8601, with zone)"),
) -> None:
    """Claim the due retrain schedules and queue their jobs, batch after batch, until none is
    due or LORAPLEX_SCHEDULE_TICK_BUDGET_SECONDS is spent (what beat runs every minute).
    Prints the counts and the first job ids (`queued_count` has them all)."""
    from workers.periodic import run_tick

    ctx = _broker_context()
    typer.echo(run_tick(ctx, now=parse_now(now)).model_dump_json(indent=2))
    _drain(ctx)


@drift_app.command("compute")
def drift_compute(
    tenant: str = typer.Option(None, help="only this tenant"),
    adapter: str = typer.Option(None, help="only this adapter (needs --tenant; no policy needed)"),
    now: str = typer.Option(None, help="window end (ISO 8601, with zone); default: now"),
) -> None:
    """Compute drift metrics on recent traffic, store them, and apply the drift policies."""
    from workers.drift import compute_drift

    ctx = _context()
    try:
        report = compute_drift(ctx, now=parse_now(now), tenant=tenant, adapter=adapter)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(json.dumps(report, indent=2))
    _drain(ctx)
