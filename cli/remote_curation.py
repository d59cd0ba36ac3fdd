"""`loraplex datasets from-traffic`: curate a dataset version from captured traffic."""

from __future__ import annotations

from typing import Any

import typer

from cli.client import Api
from cli.remote import TenantOpt


def from_traffic(
    name: str = typer.Argument(..., help="the dataset; a new version if it exists"),
    adapter: str = typer.Option(..., "--adapter", "-a", help="whose traffic"),
    version: int | None = typer.Option(None, help="only traces this version answered"),
    window: str | None = typer.Option(None, help="e.g. 24h, 7d (default 7d); not with --since"),
    since: str | None = typer.Option(None, help="ISO time with a zone, e.g. 2026-12-01T00:00Z"),
    until: str | None = typer.Option(None, help="ISO time with a zone; default now"),
    rating: list[int] | None = typer.Option(
        None, "--rating", help="keep uncorrected traces rated so (repeat: --rating 1 --rating 0)"
    ),
    corrected_only: bool = typer.Option(False, "--corrected-only", help="corrections only"),
    min_count: int = typer.Option(1, help="fewer rows is an error; nothing is stored"),
    tenant: str = TenantOpt,
) -> None:
    """Curate a dataset version from the adapter's full traces: the served answers, or the
    corrections that replace them (answers rated -1 without a correction are left out)."""
    api = Api.load()
    body: dict[str, Any] = {
        "name": name,
        "adapter": adapter,
        "corrected_only": corrected_only,
        "min_count": min_count,
    }
    optional = {"version": version, "window": window, "since": since, "until": until}
    body |= {k: v for k, v in optional.items() if v is not None}
    if rating:
        body["ratings"] = rating
    d = api.post(f"/v1/tenants/{api.tenant(tenant)}/datasets/from-traffic", json=body)
    t = d["traffic"]
    typer.echo(
        f"{d['name']} v{d['version']}: {d['rows']} rows from {t['matched']} traces of "
        f"{adapter} ({t['corrected']} corrected, {t['redacted']} with redactions), "
        f"sha256 {d['sha256'][:16]}…, id {d['id']}"
    )
    window_ = t["window"]
    typer.echo(f"window {window_['since']} .. {window_['until']}")
    if t["skipped"]:
        typer.echo("skipped: " + ", ".join(f"{k} {v}" for k, v in t["skipped"].items()))
    if t["redactions"]:
        typer.echo("redactions: " + ", ".join(f"{k} {v}" for k, v in t["redactions"].items()))
