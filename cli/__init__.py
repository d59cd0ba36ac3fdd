"""The `loraplex` command line."""

from __future__ import annotations

import json

import typer

from cli import demo_loop as demo_cmd
from cli import dev as dev_cmd
from cli import (
    lineage_view,
    remote,
    remote_backlog,
    remote_base_models,
    remote_curation,
    remote_evals,
    remote_feedback,
    remote_ops,
    remote_splits,
    remote_teachers,
    remote_traffic,
    up,
)
from cli import work as work_cmd

app = typer.Typer(no_args_is_help=True, add_completion=False, help="loraplex platform CLI")
db_app = typer.Typer(no_args_is_help=True, help="Database schema")
admin_app = typer.Typer(no_args_is_help=True, help="Local administration (needs database access)")
serve_app = typer.Typer(no_args_is_help=True, help="Run services")
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")
app.add_typer(serve_app, name="serve")
app.add_typer(dev_cmd.app, name="dev")
app.command("demo")(demo_cmd.run)
app.command("up")(up.up)
app.command("worker")(work_cmd.worker)
app.command("beat")(work_cmd.beat)
app.add_typer(work_cmd.jobs_app, name="jobs")
app.add_typer(work_cmd.schedules_app, name="schedules")
app.add_typer(work_cmd.drift_app, name="drift")
# Over HTTP, against any deployment (`loraplex login` first).
app.command("login")(remote.login)
app.add_typer(remote.tenants_app, name="tenants")
app.add_typer(remote.datasets_app, name="datasets")
remote.datasets_app.command("from-traffic")(remote_curation.from_traffic)
app.add_typer(remote_traffic.traffic_app, name="traffic")
app.command("feedback")(remote_feedback.feedback)
app.add_typer(remote_teachers.teachers_app, name="teachers")
app.add_typer(remote_teachers.labelling_app, name="labelling")
app.add_typer(remote.adapters_app, name="adapters")
app.command("train")(remote.train)
app.command("versions")(remote.versions)
app.command("promote")(remote.promote)
app.command("rollback")(remote.rollback)
app.add_typer(remote_splits.split_app, name="split")
app.add_typer(remote.schedule_app, name="schedule")
app.add_typer(remote.drift_app, name="drift-policy")
app.command("lineage")(lineage_view.lineage)
app.add_typer(remote.audit_app, name="audit")
app.add_typer(remote_base_models.base_models_app, name="base-models")
app.add_typer(remote_evals.evals_app, name="evals")
app.command("backlog")(remote_backlog.backlog)
_ = remote_ops  # registers the schedule, drift-policy and audit commands


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply Alembic migrations up to REVISION (default: head)."""
    from registry.migrate import upgrade
    from registry.settings import get_settings

    settings = get_settings()
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url, revision)
    typer.echo(f"database at {revision}")


@admin_app.command("create-client")
def create_client(
    role: str = typer.Option(..., help="ops or auditor"),
    name: str = typer.Option("", help="a label for this client"),
) -> None:
    """Create an ops or auditor API client; prints client_id and client_secret (shown once)."""
    from registry.auth.principal import Principal
    from registry.auth.scopes import Role
    from registry.auth.service import clients
    from registry.db import make_engine, make_sessionmaker, run_unit_of_work
    from registry.settings import get_settings

    if role not in (Role.OPS.value, Role.AUDITOR.value):
        raise typer.BadParameter("role must be 'ops' or 'auditor' (tenant clients: the API)")
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    for session in run_unit_of_work(make_sessionmaker(engine)):
        client, secret = clients.create(
            session, actor=Principal.local_operator(), role=Role(role), name=name
        )
        out = {"client_id": client.client_id, "client_secret": secret, "role": role}
    engine.dispose()
    typer.echo(json.dumps(out))


@serve_app.command("registry")
def serve_registry(
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    workers: int = typer.Option(1, help="uvicorn worker processes"),
) -> None:
    """Run the registry API."""
    _run_asgi("cli.compose:registry_app", host, port, workers)


@serve_app.command("engine")
def serve_engine(
    base_model: str = typer.Option(None, help="registered base model (LORAPLEX_ENGINE_BASE_MODEL)"),
) -> None:
    """Run the vLLM engine with LoRA and the registry resolver (replaces this process)."""
    import os

    from cli.config import configured_settings
    from serving.engine import prepare

    settings = configured_settings()
    launch = prepare(settings, base_model)
    typer.echo(f"engine: {launch.model_path} on {settings.resolved_engine_url}", err=True)
    os.execve(launch.argv[0], launch.argv, launch.env)


@serve_app.command("gateway")
def serve_gateway(
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8080),
    workers: int = typer.Option(1, help="uvicorn worker processes"),
) -> None:
    """Run the tenant gateway (OpenAI-compatible) in front of the engine."""
    _run_asgi("cli.compose:gateway_app", host, port, workers)


def _run_asgi(factory: str, host: str, port: int, workers: int) -> None:
    import uvicorn

    from cli.config import configured_settings

    settings = configured_settings()
    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


def main() -> None:
    app()
