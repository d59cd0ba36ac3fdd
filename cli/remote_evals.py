"""`loraplex evals`: eval suites (upload, list), the suites pinned to an adapter, scoring a
version, and the leaderboard, over HTTP. The tables are drawn by `evals_view.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from cli import evals_view as view
from cli.client import Api, ApiError
from cli.remote import _json, _Reading, console, follow_job

evals_app = typer.Typer(no_args_is_help=True, help="Eval suites, scores and leaderboards")
suite_app = typer.Typer(no_args_is_help=True, help="Eval-suite files (a tenant's, or --platform)")
evals_app.add_typer(suite_app, name="suite")

PlatformOpt = typer.Option(
    False, "--platform", help="ops' platform suites (a base model's general suite), not a tenant's"
)


def _suites_url(api: Api, tenant: str | None, platform: bool) -> str:
    if platform:
        if tenant:
            typer.secho("--platform suites belong to no tenant: drop TENANT", err=True)
            raise typer.Exit(2)
        return "/v1/platform/eval-suites"
    return f"/v1/tenants/{api.tenant(tenant)}/eval-suites"


def _adapter_url(tenant: str, adapter: str) -> str:
    return f"/v1/tenants/{tenant}/adapters/{adapter}"


@suite_app.command("upload")
def suite_upload(
    targets: list[str] = typer.Argument(
        ..., metavar="[TENANT] FILE", help="TENANT default: the one saved at login"
    ),
    name: str = typer.Option(..., help="suite name; a new version if it exists"),
    platform: bool = PlatformOpt,
) -> None:
    """Upload a JSONL suite (rows of prompt + checks); a 422 lists the bad lines."""
    if len(targets) > 2:
        raise typer.BadParameter("expected [TENANT] FILE", param_hint="[TENANT] FILE")
    tenant, path = (targets[0], Path(targets[1])) if len(targets) == 2 else (None, Path(targets[0]))
    if not path.is_file():
        raise typer.BadParameter(f"'{path}' is not a file", param_hint="FILE")
    api = Api.load()
    url = _suites_url(api, tenant, platform)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    with Progress(*columns, TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task(f"uploading {path.name}", total=path.stat().st_size)
        with path.open("rb") as f:
            files: dict[str, Any] = {
                "file": (path.name, _Reading(f, progress, task), "application/jsonl")
            }
            # The raw answer, not `api.post`: 200 (unchanged) and 422 (the report) are shown.
            resp = api.http.post(url, headers=api._headers(), data={"name": name}, files=files)
    if resp.status_code == 422 and "report" in _body(resp):
        for line in view.upload_errors(_body(resp)):
            typer.secho(line, err=True, fg="red")
        raise typer.Exit(1)
    if resp.status_code >= 400:
        raise ApiError(resp)
    body = resp.json()
    unchanged = (
        " (unchanged: this name already holds this content)" if resp.status_code == 200 else ""
    )
    typer.echo(f"{view.suite_line(body)}, id {body['id']}{unchanged}")


def _body(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@suite_app.command("list")
def suite_list(
    tenant: str = typer.Argument(None, help="default: the one saved at login"),
    name: str = typer.Option(None, help="only this suite's versions"),
    platform: bool = PlatformOpt,
) -> None:
    """A tenant's suites (or the platform's), with their rows and check kinds."""
    api = Api.load()
    params = {"name": name} if name else {}
    body = api.get(_suites_url(api, tenant, platform), params=params)
    items = body["items"] if isinstance(body, dict) else body
    console.print(view.suites_table(items))


@evals_app.command("attach")
def attach(
    tenant: str,
    adapter: str,
    suites: list[str] = typer.Argument(
        None, metavar="SUITE[:VERSION]...", help="no version: the latest, at the time of the call"
    ),
    clear: bool = typer.Option(False, "--clear", help="pin no suite"),
) -> None:
    """Pin suite versions to ADAPTER (replaces the pinned set); every version is scored on them.

    With no SUITE (and no --clear): show the pinned set."""
    if suites and clear:
        raise typer.BadParameter("name the suites to pin, or say --clear to pin none; not both")
    refs = [view.parse_ref(s) for s in suites or []]
    api = Api.load()
    url = _adapter_url(tenant, adapter) + "/eval-suites"
    out = api.put(url, json={"suites": refs}) if suites or clear else api.get(url)
    pinned = out["suites"]
    if not pinned:
        typer.echo(f"{adapter}: no suites pinned")
    for s in pinned:
        typer.echo(f"{adapter}: {view.suite_line(s)}")


@evals_app.command("run")
def run(
    tenant: str,
    adapter: str,
    version: str,
    wait: bool = typer.Option(False, "--wait", help="follow the job to the end, then the scores"),
) -> None:
    """Score VERSION on the pinned suites and the base model's general suite (a job)."""
    if not version.lstrip("vV").isdigit():
        raise typer.BadParameter(f"'{version}': expected a version number like 3 or v3")
    number = int(version.lstrip("vV"))
    api = Api.load()
    base = _adapter_url(tenant, adapter) + f"/versions/{number}"
    job = api.post(base + "/evaluate")
    typer.echo(f"job {job['id']}: {adapter} v{number} evaluation queued")
    if not wait:
        return
    job = follow_job(api, tenant, job["id"])
    if job["status"] != "succeeded":
        raise typer.Exit(1)
    console.print(view.scores_table(api.get(base + "/evals"), number))


@evals_app.command("leaderboard")
def leaderboard(
    tenant: str,
    adapter: str,
    suite: str = typer.Option(None, help="default: the first pinned suite"),
    as_json: bool = typer.Option(False, "--json", help="the registry's answer as JSON"),
) -> None:
    """Every version, the base model and the aliases on one suite: newest first."""
    api = Api.load()
    params = {"suite": suite} if suite else {}
    payload = api.get(_adapter_url(tenant, adapter) + "/leaderboard", params=params)
    if as_json:
        _json(payload)
        return
    console.print(view.leaderboard_table(payload))
