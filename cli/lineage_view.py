"""`loraplex lineage`: a version's lineage as a tree in the terminal, or as JSON, PROV-JSON or a
standalone SVG picture of the graph."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

import typer
from rich.tree import Tree

from cli.client import Api
from cli.remote import TenantOpt, console

Graph = dict[str, Any]


def lineage(
    adapter: str,
    version: str,
    fmt: str = typer.Option("tree", "--format", "-f", help="tree | json | prov | svg"),
    output: Path = typer.Option(None, "--output", "-o", help="write to a file instead"),
    tenant: str = TenantOpt,
) -> None:
    """Which data, job, trigger, base model, evals, alias moves and serving made VERSION."""
    api = Api.load()
    url = f"/v1/tenants/{api.tenant(tenant)}/adapters/{adapter}/versions/{version}/lineage"
    if fmt not in {"tree", "json", "prov", "svg"}:
        raise typer.BadParameter("--format is tree, json, prov or svg")
    graph = api.get(url, params={"format": "prov"} if fmt == "prov" else {})
    if fmt == "tree":
        text = None
        console.print(tree(graph))
    elif fmt == "svg":
        text = svg(graph)
    else:
        text = json.dumps(graph, indent=2, default=str)
    if text is None:
        return
    if output is not None:
        output.write_text(text)
        typer.echo(f"wrote {output}")
    else:
        typer.echo(text)


def tree(graph: Graph) -> Tree:
    nodes = {n["id"]: n for n in graph["nodes"]}
    out_edges: dict[str, list[tuple[str, str]]] = {}
    in_edges: dict[str, list[tuple[str, str]]] = {}
    for e in graph["edges"]:
        out_edges.setdefault(e["source"], []).append((e["relation"], e["target"]))
        in_edges.setdefault(e["target"], []).append((e["relation"], e["source"]))
    root = Tree(f"[bold]{nodes[graph['root']]['label']}[/bold]")
    _version(root, graph["root"], nodes, out_edges, in_edges)
    return root


def _version(
    branch: Tree,
    vid: str,
    nodes: dict[str, Any],
    out_edges: dict[str, list[tuple[str, str]]],
    in_edges: dict[str, list[tuple[str, str]]],
) -> None:
    v = nodes[vid]["attrs"]
    digest = (v.get("manifest_digest") or "")[:16]
    branch.add(f"status {v.get('status')}, trigger {v.get('trigger')}, manifest {digest or '-'}")
    for _, target in out_edges.get(vid, []):
        n = nodes[target]
        a = n["attrs"]
        if n["type"] == "job":
            job = branch.add(f"job {a.get('job_id')}")
            for rel, t in out_edges.get(target, []):
                if rel == "wasInformedBy":
                    job.add(f"[yellow]triggered by[/yellow] {nodes[t]['label']}")
        elif n["type"] == "dataset":
            data = branch.add(
                f"data {n['label']} ({a.get('role')}): {a.get('rows')} rows, "
                f"sha256 {str(a.get('sha256'))[:16]}"
            )
            for rel, t in out_edges.get(target, []):
                if rel == "wasDerivedFrom" and nodes[t]["type"] in ("traffic", "teacher"):
                    data.add(f"[cyan]curated from[/cyan] {nodes[t]['label']}")
        elif n["type"] == "base_model":
            branch.add(f"base model {n['label']}, digest {str(a.get('digest'))[:16]}")
        elif n["type"] == "agent":
            branch.add(f"created by {n['label']}")
    for relation, source in in_edges.get(vid, []):
        n = nodes[source]
        a = n["attrs"]
        if n["type"] == "eval":
            metrics = ", ".join(f"{k} {v:.4g}" for k, v in sorted(a.get("metrics", {}).items()))
            branch.add(f"eval {n['label']}: {metrics}")
        elif n["type"] == "alias_event" and relation == "used":
            branch.add(f"alias {n['label']} at {a.get('occurred_at')}: {a.get('reason')}")
        elif n["type"] == "serving":
            branch.add(
                f"served {a.get('requests')} requests to {a.get('clients')} clients, "
                f"{a.get('first_request_at')} to {a.get('last_request_at')}"
            )
    for relation, target in out_edges.get(vid, []):
        if relation == "wasDerivedFrom" and nodes[target]["type"] == "adapter_version":
            parent = branch.add(f"[bold]parent {nodes[target]['label']}[/bold]")
            _version(parent, target, nodes, out_edges, in_edges)


_COLUMNS = [
    ("trigger", "agent", "traffic", "teacher"),
    ("job", "dataset", "base_model"),
    ("adapter_version",),
    ("eval", "alias_event", "serving"),
]
_COLORS = {
    "adapter_version": "#dbeafe",
    "dataset": "#dcfce7",
    "base_model": "#f3e8ff",
    "job": "#fef9c3",
    "trigger": "#ffedd5",
    "eval": "#e0f2fe",
    "alias_event": "#fce7f3",
    "serving": "#ecfccb",
    "agent": "#f1f5f9",
    "traffic": "#fef3c7",
    "teacher": "#ede9fe",
}
W, H, GAP_X, GAP_Y = 260, 44, 90, 14


def svg(graph: Graph) -> str:
    """A standalone SVG: columns by kind (causes left, the versions, then what happened to
    them), one box per node, one arrow per edge labelled with its PROV relation."""
    pos: dict[str, tuple[int, int]] = {}
    for col, kinds in enumerate(_COLUMNS):
        row = 0
        for n in graph["nodes"]:
            if n["type"] in kinds:
                pos[n["id"]] = (20 + col * (W + GAP_X), 20 + row * (H + GAP_Y))
                row += 1
    width = 40 + len(_COLUMNS) * (W + GAP_X)
    height = 40 + max((y for _, y in pos.values()), default=0) + H
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        '<defs><marker id="a" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto"><path d="M0,0L10,5L0,10z" fill="#64748b"/></marker></defs>',
    ]
    for e in graph["edges"]:
        if e["source"] in pos and e["target"] in pos:
            (x1, y1), (x2, y2) = pos[e["source"]], pos[e["target"]]
            a = (x1 + W if x2 > x1 else x1, y1 + H // 2)
            b = (x2 if x2 > x1 else x2 + W, y2 + H // 2)
            if x1 == x2:
                a, b = (x1 + W, y1 + H // 2), (x2 + W, y2 + H // 2)
            parts.append(
                f'<line x1="{a[0]}" y1="{a[1]}" x2="{b[0]}" y2="{b[1]}" stroke="#94a3b8" '
                f'marker-end="url(#a)"><title>{escape(e["relation"])}</title></line>'
            )
    for n in graph["nodes"]:
        if n["id"] not in pos:
            continue
        x, y = pos[n["id"]]
        bold = ' stroke-width="2.5"' if n["id"] == graph["root"] else ""
        label = n["label"] if len(n["label"]) <= 42 else n["label"][:41] + "…"
        parts.append(
            f"<g><title>{escape(json.dumps(n['attrs'], default=str)[:2000])}</title>"
            f'<rect x="{x}" y="{y}" width="{W}" height="{H}" rx="6" '
            f'fill="{_COLORS.get(n["type"], "#fff")}" stroke="#334155"{bold}/>'
            f'<text x="{x + 8}" y="{y + 17}" font-weight="bold">{escape(n["type"])}</text>'
            f'<text x="{x + 8}" y="{y + 33}">{escape(label)}</text></g>'
        )
    parts.append("</svg>")
    return "\n".join(parts)
