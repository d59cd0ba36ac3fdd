"""CLI verbs that call a registry over HTTP: login, tenants, datasets, adapters, train, versions,
promote, rollback, schedule, drift-policy, audit. Lineage is in `lineage_view.py`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, BinaryIO

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from cli.client import Api

console = Console()
tenants_app = typer.Typer(no_args_is_help=True, help="Tenants and their API clients (ops)")
datasets_app = typer.Typer(no_args_is_help=True, help="A tenant's datasets")
adapters_app = typer.Typer(no_args_is_help=True, help="A tenant's adapters")
schedule_app = typer.Typer(no_args_is_help=True, help="Retrain schedules (ops)")
drift_app = typer.Typer(no_args_is_help=True, help="Drift policies (ops)")
audit_app = typer.Typer(no_args_is_help=True, help="The audit log")

TenantOpt = typer.Option(None, "--tenant", "-t", help="default: the one saved at login")
DONE = {"succeeded", "failed", "cancelled"}


def _json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str))


def login(
    url: str = typer.Option("http://127.0.0.1:8000", envvar="LORAPLEX_URL"),
    client_id: str = typer.Option(..., envvar="LORAPLEX_CLIENT_ID"),
    client_secret: str = typer.Option(
        ..., envvar="LORAPLEX_CLIENT_SECRET", prompt=True, hide_input=True
    ),
    tenant: str = typer.Option(None, help="default tenant for later commands"),
) -> None:
    """Check the client credentials, then keep them (and the token) for the other commands."""
    api = Api.login(url, client_id, client_secret, tenant)
    who = f"{api.profile['role']} client {client_id}"
    suffix = f", tenant {api.profile['tenant']}" if api.profile.get("tenant") else ""
    typer.echo(f"logged in to {api.profile['url']} as {who}{suffix}")


@tenants_app.command("list")
def tenants_list() -> None:
    table = Table("slug", "name", "disabled", "traffic logging")
    for t in Api.load().get("/v1/tenants")["items"]:
        table.add_row(t["slug"], t["display_name"], str(t["disabled"]), str(t["traffic_logging"]))
    console.print(table)


@tenants_app.command("create")
def tenants_create(slug: str, name: str = typer.Option(None, help="display name")) -> None:
    _json(Api.load().post("/v1/tenants", json={"slug": slug, "display_name": name or slug}))


@tenants_app.command("client")
def tenants_client(slug: str) -> None:
    """Create an API client for a tenant; the secret is shown once."""
    _json(Api.load().post(f"/v1/tenants/{slug}/clients", json={}))


class _Reading:
    """A file whose reads advance a progress bar (what httpx streams the upload from)."""

    def __init__(self, f: BinaryIO, progress: Progress, task: Any) -> None:
        self.f, self.progress, self.task = f, progress, task

    def read(self, size: int = -1) -> bytes:
        chunk = self.f.read(size)
        self.progress.update(self.task, advance=len(chunk))
        return chunk


@datasets_app.command("upload")
def datasets_upload(
    path: Path = typer.Argument(..., exists=True, dir_okay=False),
    name: str = typer.Option(..., help="dataset name; a new version if it exists"),
    tenant: str = TenantOpt,
) -> None:
    """Upload a JSONL file (chat or prompt/completion), with a progress bar."""
    api = Api.load()
    slug = api.tenant(tenant)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    with Progress(*columns, TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task(f"uploading {path.name}", total=path.stat().st_size)
        with path.open("rb") as f:
            body = api.post(
                f"/v1/tenants/{slug}/datasets",
                data={"name": name},
                files={"file": (path.name, _Reading(f, progress, task), "application/jsonl")},
            )
    typer.echo(
        f"{body['name']} v{body['version']}: {body['rows']} rows "
        f"({body['duplicates_dropped']} duplicates dropped), sha256 {body['sha256'][:16]}…, "
        f"id {body['id']}"
    )


@datasets_app.command("list")
def datasets_list(tenant: str = TenantOpt) -> None:
    api = Api.load()
    table = Table("id", "name", "version", "rows", "sha256")
    for d in api.get(f"/v1/tenants/{api.tenant(tenant)}/datasets")["items"]:
        table.add_row(d["id"], d["name"], str(d["version"]), str(d["rows"]), d["sha256"][:16])
    console.print(table)


@adapters_app.command("create")
def adapters_create(
    name: str,
    base_model: str = typer.Option(..., help="a registered base model"),
    training: str = typer.Option("{}", help='training defaults as JSON, e.g. {"rank": 8}'),
    tenant: str = TenantOpt,
) -> None:
    api = Api.load()
    body = {"name": name, "base_model": base_model, "training": json.loads(training)}
    _json(api.post(f"/v1/tenants/{api.tenant(tenant)}/adapters", json=body))


@adapters_app.command("policy")
def adapters_policy(
    name: str,
    mode: str = typer.Option("auto", help="auto | manual"),
    margin: float = typer.Option(0.0),
    tenant: str = TenantOpt,
) -> None:
    """How new versions reach `production`."""
    api = Api.load()
    body = {"mode": mode, "margin": margin}
    _json(api.put(f"/v1/tenants/{api.tenant(tenant)}/adapters/{name}/promotion-policy", json=body))


def train(
    adapter: str,
    dataset: list[str] = typer.Option(..., "--dataset", "-d", help="dataset id (repeatable)"),
    hyper: list[str] = typer.Option([], "--set", help="hyperparameter override key=value"),
    follow: bool = typer.Option(True, help="follow the job until it finishes"),
    tenant: str = TenantOpt,
) -> None:
    """Queue a training job, then follow it: progress bar, live losses, the gate's decision."""
    api = Api.load()
    slug = api.tenant(tenant)
    overrides = {k: json.loads(v) for k, _, v in (h.partition("=") for h in hyper)}
    body = {"adapter": adapter, "dataset_ids": dataset, "hyperparameters": overrides}
    job = api.post(f"/v1/tenants/{slug}/training-jobs", json=body)
    typer.echo(f"job {job['id']}: {adapter} v{job['version']} queued")
    if follow:
        job = follow_job(api, slug, job["id"])
        raise typer.Exit(0 if job["status"] == "succeeded" else 1)


def follow_job(api: Api, slug: str, job_id: str, poll: float = 1.0) -> dict[str, Any]:
    seen = 0
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"))
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("queued", total=None, info="")
        while True:
            job = api.get(f"/v1/tenants/{slug}/training-jobs/{job_id}")
            for event in job["events"][seen:]:
                if event["kind"] == "metrics":  # per-step numbers: the bar shows them live
                    continue
                progress.console.print(f"  [dim]{event['kind']}[/dim] {event['message']}")
            seen = len(job["events"])
            p = job["progress"]
            info = " ".join(
                f"{k} {p[k]:.4g}"
                for k in ("train_loss", "eval_loss", "tokens_per_second")
                if isinstance(p.get(k), int | float)
            )
            progress.update(
                task,
                description=f"{job['status']} epoch {p.get('epoch', '-')}",
                completed=p.get("step", 0),
                total=p.get("total_steps"),
                info=info,
            )
            if job["status"] in DONE:
                break
            time.sleep(poll)
    typer.echo(f"job {job['status']}" + (f": {job['error']}" if job["error"] else ""))
    if job["result"].get("decision"):
        promoted = "promoted" if job["result"].get("promoted") else "not promoted"
        typer.echo(f"gate: {promoted}: {job['result']['decision']}")
    return job


def versions(adapter: str, tenant: str = TenantOpt) -> None:
    """An adapter's versions with their trigger, aliases and digest."""
    api = Api.load()
    base = f"/v1/tenants/{api.tenant(tenant)}/adapters/{adapter}"
    aliases: dict[int, list[str]] = {}
    for a in api.get(f"{base}/aliases"):
        aliases.setdefault(a["version"], []).append(a["alias"])
    table = Table("version", "status", "trigger", "aliases", "manifest digest", "created")
    for v in api.get(f"{base}/versions")["items"]:
        table.add_row(
            f"v{v['version']}",
            v["status"],
            v["trigger"],
            ",".join(aliases.get(v["version"], [])),
            (v.get("manifest_digest") or "")[:16],
            str(v["created_at"])[:19],
        )
    console.print(table)


def promote(
    adapter: str,
    version: str,
    alias: str = typer.Option("production"),
    reason: str = typer.Option("promoted from the CLI"),
    tenant: str = TenantOpt,
) -> None:
    """Point an alias (default `production`) at a version."""
    api = Api.load()
    number = int(version.lstrip("vV"))
    body = {"version": number, "reason": reason}
    url = f"/v1/tenants/{api.tenant(tenant)}/adapters/{adapter}/aliases/{alias}"
    moved = api.put(url, json=body)
    typer.echo(f"{adapter}@{alias} -> v{moved['version']}")


def rollback(
    adapter: str,
    alias: str = typer.Option("production"),
    reason: str = typer.Option("rollback from the CLI"),
    tenant: str = TenantOpt,
) -> None:
    """Move an alias back to the version it pointed to before its last move."""
    api = Api.load()
    url = f"/v1/tenants/{api.tenant(tenant)}/adapters/{adapter}/aliases/{alias}"
    history = api.get(f"{url}/history")
    moves = history["items"] if isinstance(history, dict) else history
    previous = next((m["from_version"] for m in reversed(moves) if m["from_version"]), None)
    if previous is None:
        typer.secho(f"{adapter}@{alias} has no earlier version to go back to", err=True)
        raise typer.Exit(1)
    moved = api.put(url, json={"version": previous, "reason": reason})
    typer.echo(f"{adapter}@{alias} -> v{moved['version']} (rolled back)")
