"""`loraplex teachers ...` (ops) and `loraplex labelling ...`: teacher models that label
prompts, kept only when their answers pass the adapter's eval checks."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.table import Table

from cli.client import Api
from cli.remote import DONE, TenantOpt, _json, console

teachers_app = typer.Typer(no_args_is_help=True, help="Teacher models (ops)")
labelling_app = typer.Typer(no_args_is_help=True, help="Labelling jobs: teacher answers")


def _settings(**given: Any) -> dict[str, Any]:
    return {k: v for k, v in given.items() if v is not None}


@teachers_app.command("add")
def teachers_add(
    name: str,
    base_url: str = typer.Option(..., help="OpenAI-compatible root, e.g. https://host/v1"),
    model: str = typer.Option(..., help="the model name the endpoint serves"),
    secret: str = typer.Option(
        None, help="secret name: a file in the workers' LORAPLEX_SECRETS_DIR or an env variable"
    ),
    rpm: int = typer.Option(None, help="requests per minute (default 60)"),
    timeout: float = typer.Option(None, help="seconds per request (default 30)"),
    retries: int = typer.Option(None, help="retries on timeouts, 429 and 5xx (default 3)"),
    budget: int = typer.Option(None, help="calls per labelling job, retries too (default 1000)"),
    max_tokens: int = typer.Option(None, help="per answer (default 256)"),
) -> None:
    """Register a teacher (ops). Its key is never sent to the registry: name the secret."""
    body = {"name": name, "base_url": base_url, "model": model} | _settings(
        secret_name=secret,
        requests_per_minute=rpm,
        timeout_seconds=timeout,
        max_retries=retries,
        max_requests=budget,
        max_tokens=max_tokens,
    )
    _json(Api.load().post("/v1/teachers", json=body))


@teachers_app.command("list")
def teachers_list() -> None:
    table = Table("name", "model", "base_url", "rpm", "timeout", "retries", "budget", "enabled")
    for t in Api.load().get("/v1/teachers")["items"]:
        table.add_row(
            t["name"],
            t["model"],
            t["base_url"],
            str(t["requests_per_minute"]),
            f"{t['timeout_seconds']:g}s",
            str(t["max_retries"]),
            str(t["max_requests"]),
            "yes" if t["enabled"] else "no",
        )
    console.print(table)


@teachers_app.command("update")
def teachers_update(
    name: str,
    base_url: str = typer.Option(None),
    model: str = typer.Option(None),
    secret: str = typer.Option(None),
    rpm: int = typer.Option(None),
    timeout: float = typer.Option(None),
    retries: int = typer.Option(None),
    budget: int = typer.Option(None),
    max_tokens: int = typer.Option(None),
    enabled: bool = typer.Option(None, "--enable/--disable"),
) -> None:
    """Change a teacher (ops); `--disable` keeps new labelling jobs from naming it."""
    body = _settings(
        base_url=base_url,
        model=model,
        secret_name=secret,
        requests_per_minute=rpm,
        timeout_seconds=timeout,
        max_retries=retries,
        max_requests=budget,
        max_tokens=max_tokens,
        enabled=enabled,
    )
    _json(Api.load().request("PATCH", f"/v1/teachers/{name}", json=body))


@teachers_app.command("remove")
def teachers_remove(name: str) -> None:
    """Delete a teacher no job or drift policy ever named (else disable it)."""
    Api.load().delete(f"/v1/teachers/{name}")
    typer.echo(f"teacher '{name}' removed")


@labelling_app.command("run")
def labelling_run(
    adapter: str,
    teacher: str = typer.Option(..., help="a registered teacher"),
    dataset: str = typer.Option(..., help="name of the dataset the kept answers become"),
    window: str = typer.Option(None, help="traffic of the last '24h', '7d'... (default 7d)"),
    since: str = typer.Option(None, help="ISO time instead of --window"),
    until: str = typer.Option(None, help="ISO time (default now)"),
    version: int = typer.Option(None, help="only prompts this version answered"),
    max_prompts: int = typer.Option(None, help="default 200"),
    include_answered: bool = typer.Option(
        False, help="also prompts whose trace has a correction or a rating of 1"
    ),
    follow: bool = typer.Option(False, help="wait until the job finishes"),
    tenant: str = TenantOpt,
) -> None:
    """Label the adapter's traffic prompts with a teacher; passing answers become a dataset."""
    api = Api.load()
    slug = api.tenant(tenant)
    body = {"teacher": teacher, "dataset": dataset, "skip_answered": not include_answered}
    body |= _settings(
        window=window, since=since, until=until, version=version, max_prompts=max_prompts
    )
    job = api.post(f"/v1/tenants/{slug}/adapters/{adapter}/labelling-jobs", json=body)
    if not follow:
        _json(job)
        return
    typer.echo(f"labelling job {job['id']} queued", err=True)
    while job["status"] not in DONE:
        time.sleep(1)
        job = api.get(f"/v1/tenants/{slug}/labelling-jobs/{job['id']}")
    _json(job)
    raise typer.Exit(0 if job["status"] == "succeeded" else 1)


@labelling_app.command("list")
def labelling_list(adapter: str = typer.Option(None), tenant: str = TenantOpt) -> None:
    api = Api.load()
    slug = api.tenant(tenant)
    params = {"adapter": adapter} if adapter else {}
    table = Table("id", "adapter", "teacher", "status", "sent", "kept", "refused", "error")
    for j in api.get(f"/v1/tenants/{slug}/labelling-jobs", params=params)["items"]:
        p = j["progress"]
        table.add_row(
            j["id"],
            j["adapter"],
            j["teacher"],
            j["status"],
            *(str(p.get(k, "-")) for k in ("sent", "kept", "refused")),
            j["error"][:60],
        )
    console.print(table)


@labelling_app.command("show")
def labelling_show(job_id: str, tenant: str = TenantOpt) -> None:
    api = Api.load()
    _json(api.get(f"/v1/tenants/{api.tenant(tenant)}/labelling-jobs/{job_id}"))


@labelling_app.command("cancel")
def labelling_cancel(job_id: str, tenant: str = TenantOpt) -> None:
    api = Api.load()
    _json(api.post(f"/v1/tenants/{api.tenant(tenant)}/labelling-jobs/{job_id}/cancel"))
