"""A version's own neighbourhood of its lineage graph, as boxes with numbers and left-to-right
links: data, base model and trigger on the left, the job, the version, then its evals, alias
moves and serving on the right. The parent version is one box (it links to its own page)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from registry.lineage.schemas import LineageGraph, Node

from .lineage_graph import Box, Link

CAP = 12  # boxes per kind (datasets, evals, alias moves); the rest is one "+N more" box
MAIN_METRICS = ("pass_rate", "eval_loss", "exact_match", "mean_loss")
ROLE_ORDER = {"train": 0, "validation": 1, "rehearsal": 2}


@dataclass(frozen=True)
class JobFacts:
    """What the training_jobs row adds to the job box."""

    status: str = ""
    duration: str = ""


def version_url(tenant: str, adapter: str, number: Any) -> str:
    return f"/console/t/{quote(tenant)}/adapters/{quote(adapter)}/v/{number}"


def short(value: Any, n: int = 10) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= n else text[:n] + "…"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def _suite_rank(suite: str) -> tuple[int, str]:
    return (0 if suite.startswith("heldout") else 2 if suite.startswith("general") else 1, suite)


def main_score(metrics: dict[str, Any]) -> tuple[str, Any]:
    for name in MAIN_METRICS:
        if name in metrics:
            return name, metrics[name]
    name = sorted(metrics)[0] if metrics else ""
    return name, metrics.get(name)


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _date(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value or "")[:16].replace("T", " ")


def _version_box(n: Node, tenant: str, root: bool, ancestors: int) -> Box:
    a = n.attrs
    if root:
        lines = (
            f"{a.get('adapter')}@v{a.get('version')}",
            f"{a.get('status')} · {a.get('trigger')}",
            f"manifest {short(a.get('manifest_digest'))}" if a.get("manifest_digest") else "",
        )
        return Box(n.id, n.type, lines, root=True, title=n.label)
    lines = (
        f"{a.get('adapter')}@v{a.get('version')} (parent)",
        f"{ancestors} ancestor{'s' if ancestors != 1 else ''} in the chain",
        f"{a.get('status')} · {a.get('trigger')}",
    )
    href = version_url(tenant, str(a.get("adapter")), a.get("version"))
    return Box(n.id, n.type, lines, href=href, title=n.label)


def _dataset_box(n: Node, role: str) -> Box:
    a = n.attrs
    owner = " (platform)" if a.get("owner") == "platform" else ""
    lines = (
        f"{n.label}{owner}",
        f"{_num(a.get('rows'))} rows · {role}",
        f"sha256 {short(a.get('sha256'), 12)}",
    )
    return Box(n.id, n.type, lines, title=f"{n.label} sha256 {a.get('sha256')}")


def _origin_box(n: Node) -> Box:
    a = n.attrs
    if n.type == "traffic":
        window = a.get("window") or {}
        lines = (
            "production traffic",
            f"{_num(a.get('matched', 0))} traces · {_num(a.get('corrected', 0))} corrected",
            f"{str(window.get('since', '?'))[:10]}..{str(window.get('until', '?'))[:10]}",
        )
    else:
        lines = (
            f"teacher {a.get('teacher', '?')}",
            f"{_num(a.get('sent', 0))} sent · {_num(a.get('kept', 0))} kept",
            str(a.get("model", "")),
        )
    return Box(n.id, n.type, lines, title=n.label)


def _trigger_box(n: Node) -> Box:
    a = n.attrs
    if a.get("kind") == "drift":
        d = a.get("drift") or {}
        value = d.get("value")
        shown = f"{float(value):.3g}" if isinstance(value, int | float) else "?"
        lines = (
            "drift trigger",
            f"{d.get('metric')} {shown} > {d.get('threshold')}",
            f"on {_num(d.get('sample_size'))} prompts",
        )
    else:
        s = a.get("schedule") or {}
        lines = (
            "schedule trigger",
            f"{s.get('cron')} ({s.get('timezone')})",
            f"due {_date(a.get('due_at'))}",
        )
    return Box(n.id, n.type, lines, title=n.label)


def _eval_box(n: Node) -> Box:
    a = n.attrs
    metric, value = main_score(a.get("metrics") or {})
    who = "base model" if a.get("subject") == "base_model" else "this version"
    suite = str(a.get("suite"))
    name = "held-out set" if suite.startswith("heldout") else suite
    lines = (f"eval {name}", who, f"{metric} {_num(value)}")
    return Box(n.id, n.type, lines, title=f"{n.label}: {a.get('metrics')}")


def _alias_box(n: Node) -> Box:
    a = n.attrs
    moved = f"v{a['from']}" if a.get("from") else "-"
    to = f"v{a['to']}" if a.get("to") else "-"
    lines = (
        f"{a.get('alias')}: {moved} → {to}",
        f"by {a.get('actor')}",
        _date(a.get("occurred_at")),
    )
    return Box(n.id, n.type, lines, title=f"{n.label}: {a.get('reason') or 'no reason given'}")


def _serving_box(n: Node) -> Box:
    a = n.attrs
    lines = (
        f"served {_num(a.get('requests'))} requests",
        f"{_num(a.get('clients'))} clients",
        f"{_num(a.get('tokens'))} tokens",
    )
    return Box(n.id, n.type, lines, title=n.label)


def _more(kind: str, left: int) -> Box:
    return Box(f"more:{kind}", "more", (f"+{left} more {kind}", "listed below"))


def neighbourhood(
    g: LineageGraph, *, tenant: str, job: JobFacts | None = None, ancestors: int = 0
) -> tuple[list[Box], list[Link]]:
    """The boxes and links of the root version's neighbourhood, in a good first order."""
    nodes = {n.id: n for n in g.nodes}
    root = nodes[g.root]
    out_of: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    into: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for e in g.edges:
        out_of.setdefault(e.source, []).append((e.target, e.relation, e.attrs))
        into.setdefault(e.target, []).append((e.source, e.relation, e.attrs))

    def targets(src: str, relation: str, prefix: str) -> list[tuple[Node, dict[str, Any]]]:
        return [
            (nodes[t], attrs)
            for t, rel, attrs in out_of.get(src, [])
            if rel == relation and t.startswith(prefix) and t in nodes
        ]

    def sources(dst: str, relation: str, prefix: str) -> list[tuple[Node, dict[str, Any]]]:
        return [
            (nodes[s], attrs)
            for s, rel, attrs in into.get(dst, [])
            if rel == relation and s.startswith(prefix) and s in nodes
        ]

    boxes: list[Box] = []
    links: list[Link] = []
    jobs = targets(root.id, "wasGeneratedBy", "job:")
    sink = jobs[0][0].id if jobs else root.id  # what the inputs feed
    datasets = sorted(
        targets(root.id, "used", "dataset:"),
        key=lambda p: (ROLE_ORDER.get(str(p[1].get("role")), 9), p[0].label),
    )
    for n, attrs in datasets[:CAP]:
        for origin, _ in targets(n.id, "wasDerivedFrom", "t"):
            if origin.type in ("traffic", "teacher"):
                boxes.append(_origin_box(origin))
                links.append(Link(origin.id, n.id, "from"))
        boxes.append(_dataset_box(n, str(attrs.get("role") or "")))
        links.append(Link(n.id, sink, str(attrs.get("role") or "")))
    if len(datasets) > CAP:
        boxes.append(_more("datasets", len(datasets) - CAP))
        links.append(Link("more:datasets", sink))
    for n, _ in targets(root.id, "used", "base_model:"):
        lines = (
            "base model",
            str(n.attrs.get("name") or n.label),
            short(n.attrs.get("digest"), 16),
        )
        boxes.append(Box(n.id, n.type, lines, title=f"{n.label} {n.attrs.get('digest')}"))
        links.append(Link(n.id, sink, "base"))
    for n, _ in jobs:
        for t, _ in targets(n.id, "wasInformedBy", "trigger:"):
            boxes.append(_trigger_box(t))
            links.append(Link(t.id, n.id, "started"))
        if not targets(n.id, "wasInformedBy", "trigger:"):
            by = root.attrs.get("created_by")
            manual = Box(
                f"trigger:{root.id}",
                "trigger",
                (f"{root.attrs.get('trigger')} trigger", f"by {by}"),
            )
            boxes.append(manual)
            links.append(Link(manual.id, n.id, "started"))
    for n, _ in targets(root.id, "wasDerivedFrom", "version:"):
        boxes.append(_version_box(n, tenant, False, ancestors))
        links.append(Link(n.id, root.id, "parent"))
    for n, _ in jobs:
        job_id = str(n.attrs.get("job_id"))
        facts = job or JobFacts()
        lines = (
            f"job {short(job_id, 8)}",
            " · ".join(x for x in (facts.duration, facts.status) if x) or "no job record",
            f"trigger {root.attrs.get('trigger')}",
        )
        href = f"/console/t/{quote(tenant)}/jobs/{quote(job_id)}"
        boxes.append(Box(n.id, n.type, lines, href=href, title=f"job {job_id}"))
        links.append(Link(n.id, root.id))
    boxes.append(_version_box(root, tenant, True, ancestors))
    evals = sorted(
        sources(root.id, "wasDerivedFrom", "eval:"),
        key=lambda p: (_suite_rank(str(p[0].attrs.get("suite"))), str(p[0].attrs.get("subject"))),
    )
    for n, _ in evals[:CAP]:
        boxes.append(_eval_box(n))
        links.append(Link(root.id, n.id))
    if len(evals) > CAP:
        boxes.append(_more("evals", len(evals) - CAP))
        links.append(Link(root.id, "more:evals"))
    moves = sorted(
        sources(root.id, "used", "alias_event:"), key=lambda p: str(p[0].attrs.get("occurred_at"))
    )
    for n, attrs in moves[-CAP:]:
        boxes.append(_alias_box(n))
        links.append(Link(root.id, n.id, "moved off" if attrs.get("role") == "from" else ""))
    if len(moves) > CAP:
        boxes.append(_more("alias moves", len(moves) - CAP))
        links.append(Link(root.id, "more:alias moves"))
    for n, _ in sources(root.id, "used", "serving:"):
        boxes.append(_serving_box(n))
        links.append(Link(root.id, n.id))
    return boxes, links


def serving_totals(g: LineageGraph) -> dict[str, Any] | None:
    """The root version's serving node's numbers (requests, clients, tokens, first, last)."""
    for n in g.nodes:
        if n.type == "serving" and any(e.source == n.id and e.target == g.root for e in g.edges):
            return n.attrs
    return None


def datasets_of(g: LineageGraph) -> list[tuple[Node, str]]:
    """The datasets the root version used, with the role it used each in, train first."""
    nodes = {n.id: n for n in g.nodes}
    found = [
        (nodes[e.target], str(e.attrs.get("role") or ""))
        for e in g.edges
        if e.source == g.root and e.target.startswith("dataset:") and e.target in nodes
    ]
    return sorted(found, key=lambda p: (ROLE_ORDER.get(p[1], 9), p[0].label))
