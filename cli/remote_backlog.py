"""`loraplex backlog`: the training queue across tenants (ops, auditors), over HTTP."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from cli.client import Api
from cli.remote import _json, console


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{int(seconds)}s"


def _eta(body: dict[str, Any]) -> str:
    if body["eta_seconds"] is None:
        return "unknown: no job finished in the last hour"
    if body["backlog"] == 0:
        return "nothing waits"
    return f"{_duration(body['eta_seconds'])} (about {str(body['eta_at'])[:16]} UTC)"


def backlog(
    tenant: str = typer.Option(None, "--tenant", "-t", help="only this tenant"),
    limit: int = typer.Option(10, help="top tenants shown (by queued jobs)"),
    as_json: bool = typer.Option(False, "--json", help="print the API's JSON body"),
) -> None:
    """The training backlog: jobs by trigger, top tenants, drain rate and ETA (ops, auditors)."""
    params: dict[str, Any] = {"limit": limit} | ({"tenant": tenant} if tenant else {})
    body = Api.load().get("/v1/training-backlog", params=params)
    if as_json:
        _json(body)
        return
    policy = body["policy"]
    where = f"tenant {body['tenant']}" if body["tenant"] else "all tenants"
    console.print(
        f"[bold]Training backlog[/bold] ({where}): {body['queued']} queued, "
        f"{body['running']} running, {body['paused']} paused; "
        f"oldest queued {_duration(body['oldest_queued_seconds'])}"
    )
    table = Table("trigger", "queued", "running", "paused", "priority", title="by trigger")
    for row in body["by_trigger"]:
        priority = policy["priorities"].get(row["trigger"])
        table.add_row(
            row["trigger"],
            str(row["queued"]),
            str(row["running"]),
            str(row["paused"]),
            "-" if priority is None else str(priority),
        )
    table.add_row("total", str(body["queued"]), str(body["running"]), str(body["paused"]), "")
    console.print(table)
    if body["tenants"]:
        shown = len(body["tenants"])
        title = f"top {shown} of {body['tenants_with_backlog']} tenants with jobs"
        tenants = Table("tenant", "queued", "running", "paused", "oldest queued", title=title)
        for t in body["tenants"]:
            tenants.add_row(
                t["tenant"],
                str(t["queued"]),
                str(t["running"]),
                str(t["paused"]),
                _duration(t["oldest_queued_seconds"]),
            )
        console.print(tenants)
    drained = body["drained_last_hour"]
    console.print(
        f"drain: {body['drain_per_hour']} jobs/hour (last hour: {drained['succeeded']} "
        f"succeeded, {drained['failed']} failed, {drained['cancelled']} cancelled)"
    )
    console.print(f"ETA for {body['backlog']} queued + running: {_eta(body)}")
    console.print(f"per-tenant cap: {policy['tenant_concurrency']} running jobs")
