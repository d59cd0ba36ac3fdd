"""Ops verbs over HTTP: retrain schedules, drift policies, the audit chain."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from cli.client import Api
from cli.remote import TenantOpt, _json, audit_app, console, drift_app, schedule_app


def _adapter_url(api: Api, tenant: str | None, adapter: str) -> str:
    return f"/v1/tenants/{api.tenant(tenant)}/adapters/{adapter}"


@schedule_app.command("set")
def schedule_set(
    adapter: str,
    cron: str = typer.Option(..., help="e.g. '0 3 1 1,4,7,10 *' (03:00 on each quarter's 1st)"),
    timezone: str = typer.Option("UTC", help="IANA zone the cron is read in"),
    datasets: str = typer.Option("latest", help="latest | all"),
    name: list[str] = typer.Option([], "--dataset-name", help="dataset names (repeatable)"),
    disabled: bool = typer.Option(False, "--disabled", help="keep it, but do not run it"),
    spread: int = typer.Option(
        0,
        "--spread-seconds",
        help="fire within this many seconds after each due time, at a place fixed per "
        "adapter and due time (e.g. 21600: within 6 hours); 0: at the due time",
    ),
    tenant: str = TenantOpt,
) -> None:
    """Retrain ADAPTER on a cron schedule (replaces its schedule)."""
    api = Api.load()
    body: dict[str, Any] = {
        "cron": cron,
        "timezone": timezone,
        "enabled": not disabled,
        "spread_seconds": spread,
        "datasets": datasets,
        "dataset_names": name or None,
    }
    out = api.put(_adapter_url(api, tenant, adapter) + "/schedule", json=body)
    upcoming = ", ".join(out["upcoming"]) or "none (disabled)"
    typer.echo(f"{adapter}: '{cron}' in {timezone}; next runs (UTC): {upcoming}")
    if out.get("next_fire_at") and spread:
        typer.echo(f"  spread {spread} s: the next run fires at {out['next_fire_at']} (UTC)")


@schedule_app.command("show")
def schedule_show(adapter: str, tenant: str = TenantOpt) -> None:
    api = Api.load()
    _json(api.get(_adapter_url(api, tenant, adapter) + "/schedule"))


@schedule_app.command("delete")
def schedule_delete(adapter: str, tenant: str = TenantOpt) -> None:
    api = Api.load()
    api.delete(_adapter_url(api, tenant, adapter) + "/schedule")
    typer.echo(f"{adapter}: schedule deleted")


@schedule_app.command("list")
def schedule_list(tenant: str = typer.Option(None, help="only this tenant")) -> None:
    """Every schedule across tenants, soonest next run first (ops, auditors)."""
    params = {"tenant": tenant} if tenant else {}
    table = Table("tenant", "adapter", "cron", "zone", "next run (UTC)", "fires", "last outcome")
    for s in Api.load().get("/v1/schedules", params=params)["items"]:
        table.add_row(
            s["tenant"],
            s["adapter"],
            s["cron"],
            s["timezone"],
            str(s["next_run_at"] or "-"),
            str(s.get("next_fire_at") or "-"),
            s["last_outcome"] or "-",
        )
    console.print(table)


@drift_app.command("set")
def drift_set(
    adapter: str,
    metric: str = typer.Option(
        "prompt_length_psi", help="prompt_length_psi | unigram_jsd | oov_rate"
    ),
    threshold: float = typer.Option(None, help="default: 0.2 PSI, 0.1 JSD, 0.1 OOV rate"),
    window: str = typer.Option("24h"),
    min_samples: int = typer.Option(200),
    cooldown: str = typer.Option("7d"),
    datasets: str = typer.Option(
        "latest", help="latest | all | traffic (the window's corrected and approved traffic)"
    ),
    name: list[str] = typer.Option([], "--dataset-name", help="dataset names (repeatable)"),
    teacher: str = typer.Option(None, help="traffic: a teacher labels the other prompts"),
    traffic_dataset: str = typer.Option(None, help="traffic: the curated dataset's name"),
    tenant: str = TenantOpt,
) -> None:
    """Retrain ADAPTER when its live traffic drifts from its training data."""
    api = Api.load()
    body = {
        "metric": metric,
        "threshold": threshold,
        "window": window,
        "min_samples": min_samples,
        "cooldown": cooldown,
        "datasets": datasets,
        "dataset_names": name or None,
    }
    if teacher or traffic_dataset:
        body |= {"teacher": teacher, "traffic_dataset": traffic_dataset}
    _json(api.put(_adapter_url(api, tenant, adapter) + "/drift-policy", json=body))


@drift_app.command("show")
def drift_show(adapter: str, tenant: str = TenantOpt) -> None:
    api = Api.load()
    _json(api.get(_adapter_url(api, tenant, adapter) + "/drift-policy"))


@drift_app.command("delete")
def drift_delete(adapter: str, tenant: str = TenantOpt) -> None:
    api = Api.load()
    api.delete(_adapter_url(api, tenant, adapter) + "/drift-policy")
    typer.echo(f"{adapter}: drift policy deleted")


@audit_app.command("verify")
def audit_verify(
    tenant: str | None = typer.Option(
        None, "--tenant", "-t", help="verify this tenant's chain alone (slug)"
    ),
) -> None:
    """Verify the audit log (every chain, the checkpoints, the newest anchor); with --tenant,
    one tenant's chain and the checkpoint covering it. Exit 1 if broken."""
    out = Api.load().get("/v1/audit/verify", params={"tenant": tenant} if tenant else None)
    lock = {True: "S3 Object Lock", False: "write-once, no Object Lock", None: "unknown"}
    if out["anchors"]:
        anchors = (
            f"{out['anchors']} anchors, newest at checkpoint {out['last_anchor_seq']} "
            f"({lock[out['object_lock']]})"
        )
    else:
        anchors = "no anchors yet (run `loraplex audit anchor`)"
    legacy = f", {out['legacy_events']} unkeyed from before the key" if out["legacy_events"] else ""
    what = f"tenant {tenant}'s audit chain" if tenant else "audit chain"
    if out["ok"]:
        checked = f"{out['events_checked']} events in {out['chains']} chains{legacy}"
        typer.echo(f"{what} intact: {checked}; {out['checkpoints']} checkpoints; {anchors}")
        return
    where = f"seq {out['first_bad_seq']}" if out["first_bad_seq"] else "an unknown seq"
    if out.get("first_bad_chain"):
        where += f" (chain {out['first_bad_chain']}, chain_seq {out['first_bad_chain_seq']})"
    typer.secho(f"{what} BROKEN at {where}: {out['reason']} ({anchors})", err=True, fg="red")
    raise typer.Exit(1)


@audit_app.command("anchor")
def audit_anchor() -> None:
    """Checkpoint the chain heads changed since the last checkpoint and anchor it (write-once)."""
    out = Api.load().post("/v1/audit/anchors")
    lock = "locked by S3 Object Lock" if out["object_lock"] else "write-once, no Object Lock"
    if out["created"]:
        typer.echo(
            f"checkpoint {out['seq']} ({out['entries']} chain heads) anchored as {out['key']} "
            f"({lock})"
        )
    elif out["key"]:
        typer.echo(f"already anchored: checkpoint {out['seq']} ({out['key']})")
    else:
        typer.echo("nothing to anchor: the audit log is empty")
