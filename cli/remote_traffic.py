"""`loraplex traffic ...`: capture settings, traces and erasure of an adapter's traffic."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import typer
from rich.table import Table

from cli.client import Api
from cli.remote import TenantOpt, _json, console

traffic_app = typer.Typer(no_args_is_help=True, help="Traffic capture, traces and erasure")


def _capture_url(api: Api, tenant: str | None, adapter: str) -> str:
    return f"/v1/tenants/{api.tenant(tenant)}/adapters/{adapter}/traffic-capture"


def _patterns(given: list[str]) -> list[dict[str, str]]:
    out = []
    for item in given:
        name, sep, pattern = item.partition("=")
        if not sep or not name or not pattern:
            raise typer.BadParameter(f"{item!r}: use NAME=REGEX, e.g. ORDER_ID='ORD-[0-9]{{6}}'")
        out.append({"name": name.strip(), "pattern": pattern})
    return out


@traffic_app.command("capture")
def capture(
    adapter: str,
    mode: str = typer.Option(None, help="prompts | full (request, answer, tool calls)"),
    rate: float = typer.Option(None, help="share of requests kept, 0..1"),
    platform_rate: bool = typer.Option(False, "--platform-rate", help="use the platform's rate"),
    retention: str = typer.Option(None, help="how long traces are kept: '30d', '12h', ..."),
    redact: bool = typer.Option(None, "--redact/--no-redact", help="redact before storing"),
    pattern: list[str] = typer.Option(
        [], "--pattern", help="NAME=REGEX (RE2) redacted as [REDACTED:NAME]; replaces the list"
    ),
    no_patterns: bool = typer.Option(False, "--no-patterns", help="drop your own patterns"),
    show: bool = typer.Option(False, "--show", help="only show the settings in force"),
    reset: bool = typer.Option(False, "--reset", help="back to the platform's defaults"),
    tenant: str = TenantOpt,
) -> None:
    """Set what the gateway keeps of ADAPTER's traffic; options left out keep their value."""
    api = Api.load()
    url = _capture_url(api, tenant, adapter)
    if reset:
        api.delete(url)
        typer.echo(f"{adapter}: capture back to the platform's defaults")
        return
    current = api.get(url)
    if not show:
        body: dict[str, Any] = {
            "mode": mode or current["mode"],
            "sample_rate": current["sample_rate"],
            "retention": retention or (current["retention"] if current["configured"] else None),
            "redact": current["redact"] if redact is None else redact,
            "redact_patterns": [] if no_patterns else current["redact_patterns"],
        }
        if rate is not None or platform_rate:
            body["sample_rate"] = None if platform_rate else rate
        if pattern:
            body["redact_patterns"] = _patterns(pattern)
        current = api.put(url, json=body)
    _json(current)
    if not current["tenant_traffic_logging"]:
        typer.secho("note: this tenant opted out of traffic logging; nothing is captured", err=True)


@traffic_app.command("erase")
def erase(
    adapter: str = typer.Option(None, help="only this adapter's traffic"),
    yes: bool = typer.Option(False, "--yes", help="yes, delete it (there is no undo)"),
    tenant: str = TenantOpt,
) -> None:
    """Delete captured prompts, traces, feedback and trace objects (the tenant's, or one
    adapter's)."""
    api = Api.load()
    slug = api.tenant(tenant)
    what = f"adapter '{adapter}' of tenant '{slug}'" if adapter else f"tenant '{slug}'"
    if not yes:
        typer.secho(f"this deletes all captured traffic of {what}; add --yes", err=True)
        raise typer.Exit(1)
    params = {"adapter": adapter} if adapter else {}
    out = api.request("DELETE", f"/v1/tenants/{slug}/traffic", params=params)
    typer.echo(
        f"erased {what}: {out['rows']} samples, {out['feedback']} feedback, "
        f"{out['objects']} trace objects"
    )


def _preview(item: dict[str, Any], width: int = 60) -> tuple[str, str]:
    record, trace = item["record"], item["trace"] or {}
    if "messages" in record:
        users = [m for m in record["messages"] if m.get("role") == "user"]
        prompt = str(users[-1].get("content") if users else "")
    else:
        prompt = str(record.get("prompt", ""))
    response = trace.get("response") or {}
    answer = response.get("content") or response.get("text") or ""
    if response.get("tool_calls"):
        names = [c.get("function", {}).get("name", "?") for c in response["tool_calls"]]
        answer = f"{answer} [tools: {', '.join(names)}]".strip()
    return prompt[:width], str(answer)[:width]


@traffic_app.command("traces")
def traces(
    adapter: str,
    limit: int = typer.Option(20, min=1, max=10_000, help="newest N"),
    rating: list[int] = typer.Option([], "--rating", help="only rated so: 1, 0, -1 (repeatable)"),
    since: str = typer.Option(None, help="ISO 8601 with zone"),
    as_json: bool = typer.Option(False, "--json", help="the full traces as JSON"),
    tenant: str = TenantOpt,
) -> None:
    """ADAPTER's captured requests, newest first."""
    api = Api.load()
    url = f"/v1/tenants/{api.tenant(tenant)}/traces"
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"adapter": adapter, "rating": rating}
    if since:
        params["since"] = since
    while len(items) < limit:
        page = api.get(url, params={**params, "limit": min(200, limit - len(items))})
        items += page["items"]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    if as_json:
        _json(items)
        return
    table = Table("created (UTC)", "request", "v", "captured", "rating", "prompt", "answer")
    for item in items:
        prompt, answer = _preview(item)
        fb = item["feedback"]
        rated = (
            "-" if fb is None else f"{fb['rating']:+d}" + (" corrected" if fb["corrected"] else "")
        )
        table.add_row(
            item["created_at"][:19],
            item["request_id"] or "-",
            str(item["version"] or "-"),
            item["captured"],
            rated,
            prompt,
            answer,
        )
    console.print(table)


@traffic_app.command("expire")
def expire(
    now: str = typer.Option(None, help="act as if it were this time (ISO 8601, with zone)"),
) -> None:
    """Delete traffic past its retention now (what beat runs periodically; database access)."""
    from cli.config import configured_settings
    from cli.work import parse_now
    from registry.db import make_engine, make_sessionmaker, run_unit_of_work
    from registry.storage import open_configured_store
    from registry.traffic.retention import expire_traces

    settings = configured_settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        store = open_configured_store(settings)
        for session in run_unit_of_work(make_sessionmaker(engine)):
            out = expire_traces(session, store=store, settings=settings, now=parse_now(now))
    finally:
        engine.dispose()
    typer.echo(json.dumps(dataclasses.asdict(out), indent=2))
