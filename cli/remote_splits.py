"""`loraplex split set | show | clear | history`: an adapter's traffic split (canary)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from cli.client import Api
from cli.remote import TenantOpt, _json, console
from registry.splits.schemas import parse_weights

split_app = typer.Typer(
    no_args_is_help=True, help="Traffic splits: a share of production's traffic to a candidate"
)


def _url(api: Api, tenant: str | None, adapter: str) -> str:
    return f"/v1/tenants/{api.tenant(tenant)}/adapters/{adapter}/traffic-split"


def _shares(arms: list[dict[str, Any]]) -> str:
    return " / ".join(f"{a['key']} v{a['version']} {a['weight']}%" for a in arms) or "production"


@split_app.command("set")
def set_split(
    adapter: str,
    weights: str = typer.Option(
        ..., help="KEY=PERCENT,...: aliases or versions summing to 100, e.g. production=90,v4=10"
    ),
    reason: str = typer.Option("", help="why (recorded in the split history and audit log)"),
    min_requests: int = typer.Option(None, help="rollback: requests each side first (50)"),
    max_error_rate_increase: float = typer.Option(
        None, help="rollback: allowed error rate rise over production, absolute (0.05)"
    ),
    max_latency_ratio: float = typer.Option(
        None, help="rollback: allowed p95 latency over production's, as a ratio (1.5)"
    ),
    no_rollback: bool = typer.Option(False, "--no-rollback", help="no automatic rollback"),
    tenant: str = TenantOpt,
) -> None:
    """Send shares of ADAPTER's production traffic to other versions, sticky per end user."""
    try:
        shares = parse_weights(weights)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--weights") from None
    body: dict[str, Any] = {"weights": shares, "reason": reason}
    if no_rollback:
        body["rollback"] = None
    else:
        given = {
            "min_requests": min_requests,
            "max_error_rate_increase": max_error_rate_increase,
            "max_latency_ratio": max_latency_ratio,
        }
        body["rollback"] = {k: v for k, v in given.items() if v is not None}
    api = Api.load()
    _json(api.put(_url(api, tenant, adapter), json=body))


@split_app.command("show")
def show(adapter: str, tenant: str = TenantOpt) -> None:
    """ADAPTER's split (versions, shares, rollback policy, last check)."""
    api = Api.load()
    _json(api.get(_url(api, tenant, adapter)))


@split_app.command("clear")
def clear(
    adapter: str,
    reason: str = typer.Option("", help="why (recorded in the split history and audit log)"),
    tenant: str = TenantOpt,
) -> None:
    """Back to production only."""
    api = Api.load()
    api.request("DELETE", _url(api, tenant, adapter), params={"reason": reason})
    typer.echo(f"{adapter}: no split; production takes all traffic")


@split_app.command("history")
def history(
    adapter: str,
    as_json: bool = typer.Option(False, "--json", help="the events as JSON"),
    tenant: str = TenantOpt,
) -> None:
    """Every change of ADAPTER's split, oldest first: who, when, why, automatic or not."""
    api = Api.load()
    events = api.get(_url(api, tenant, adapter) + "/history")
    if as_json:
        _json(events)
        return
    table = Table("when", "by", "change", "reason")
    for e in events:
        who = f"{e['actor']} (automatic)" if e["automatic"] else e["actor"]
        change = f"{_shares(e['previous'])} -> {_shares(e['arms'])}"
        table.add_row(str(e["occurred_at"])[:19], who, change, e["reason"])
    console.print(table)
