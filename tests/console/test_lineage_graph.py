"""The version page's lineage drawing, without a database: a typical version's neighbourhood
lays out left to right with no crossing, deterministically, fast, with every text escaped."""

from __future__ import annotations

import datetime as dt
import random
import re
import time
from typing import Any

from registry.console.lineage_graph import Box, Link, count_crossings, draw, layout, render
from registry.console.version_lineage import JobFacts, neighbourhood
from registry.lineage.schemas import Edge, LineageGraph, Node

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def typical(dataset_name: str = "support") -> LineageGraph:
    """v7, trained by a scheduled job on two datasets (one curated from traffic) and the base
    model, scored on four evals, moved by two alias events, serving; derived from v6."""
    n: list[Node] = []
    e: list[Edge] = []

    def node(id_: str, type_: Any, label: str, **attrs: Any) -> str:
        n.append(Node(id=id_, type=type_, label=label, attrs=attrs))
        return id_

    def edge(s: str, t: str, rel: Any, **attrs: Any) -> None:
        e.append(Edge(source=s, target=t, relation=rel, attrs=attrs))

    v7 = node(
        "version:7",
        "adapter_version",
        "support@v7",
        adapter="support",
        version=7,
        status="ready",
        trigger="schedule",
        manifest_digest="ab" * 32,
        created_by="lpx_acme",
    )
    v6 = node("version:6", "adapter_version", "support@v6", adapter="support", version=6)
    v5 = node("version:5", "adapter_version", "support@v5", adapter="support", version=5)
    edge(v7, v6, "wasDerivedFrom")
    edge(v6, v5, "wasDerivedFrom")
    train = node(
        "dataset:a", "dataset", f"{dataset_name}@v3", rows=1200, sha256="c" * 64, role="train"
    )
    held = node("dataset:b", "dataset", "heldout@v1", rows=100, sha256="d" * 64, role="validation")
    edge(v7, train, "used", role="train")
    edge(v7, held, "used", role="validation")
    edge(v6, held, "used", role="validation")
    traffic = node(
        "traffic:a",
        "traffic",
        "traffic",
        matched=420,
        corrected=37,
        window={"since": "2026-02-01", "until": "2026-02-28"},
    )
    edge(train, traffic, "wasDerivedFrom")
    base = node("base_model:x", "base_model", "tiny", name="tiny", digest="e" * 64)
    edge(v7, base, "used")
    edge(v6, base, "used")
    job = node("job:j7", "job", "job j7", job_id="j7")
    edge(v7, job, "wasGeneratedBy")
    trig = node(
        "trigger:7",
        "trigger",
        "schedule",
        kind="schedule",
        schedule={"cron": "0 3 * * *", "timezone": "UTC"},
        due_at="2026-03-01T03:00:00+00:00",
    )
    edge(job, trig, "wasInformedBy")
    for i, (suite, subject, metrics) in enumerate(
        [
            ("heldout", "version", {"eval_loss": 0.41}),
            ("heldout", "base_model", {"eval_loss": 1.9}),
            ("faq:v1", "version", {"pass_rate": 0.92}),
            ("general:mmlu:v1", "version", {"pass_rate": 0.61}),
        ]
    ):
        ev = node(f"eval:{i}", "eval", suite, suite=suite, subject=subject, metrics=metrics)
        edge(ev, v7, "wasDerivedFrom")
    edge(
        node("eval:9", "eval", "heldout", suite="heldout", subject="version", metrics={}),
        v6,
        "wasDerivedFrom",
    )
    for i, (alias, old, new) in enumerate([("candidate", None, 7), ("production", 6, 7)]):
        ev = node(
            f"alias_event:{i}",
            "alias_event",
            alias,
            alias=alias,
            actor="ops",
            occurred_at=T0 + dt.timedelta(hours=i),
            **{"from": old, "to": new},
        )
        edge(ev, v7, "used", role="to")
        if old:
            edge(ev, v6, "used", role="from")
    serving = node("serving:7", "serving", "served", requests=1234, clients=3, tokens=99000)
    edge(serving, v7, "used")
    return LineageGraph(nodes=n, edges=e, root=v7)


def boxes_links() -> tuple[list[Box], list[Link]]:
    return neighbourhood(
        typical(), tenant="acme", job=JobFacts("succeeded", "12m 03s"), ancestors=6
    )


def test_typical_version_has_every_neighbour_and_no_crossings() -> None:
    boxes, links = boxes_links()
    types = sorted(b.type for b in boxes)
    assert types.count("dataset") == 2 and types.count("eval") == 4
    assert types.count("alias_event") == 2 and types.count("serving") == 1
    assert {"base_model", "job", "trigger", "traffic"} <= set(types)
    assert [b.id for b in boxes if b.type == "adapter_version"] == ["version:6", "version:7"]
    assert "version:5" not in {b.id for b in boxes}  # one box for the parent, not the chain
    lay = layout(boxes, links)
    assert count_crossings(lay) == 0
    rank = lay.rank
    assert rank["traffic:a"] < rank["dataset:a"] < rank["job:j7"] < rank["version:7"]
    assert rank["base_model:x"] < rank["job:j7"] and rank["trigger:7"] < rank["job:j7"]
    assert rank["version:6"] < rank["version:7"]
    assert all(rank[f"eval:{i}"] > rank["version:7"] for i in range(4))
    assert rank["serving:7"] > rank["version:7"]


def test_every_edge_goes_left_to_right() -> None:
    boxes, links = boxes_links()
    lay = layout(boxes, links)
    assert len(lay.routes) == len(links)
    for _link, path in lay.routes:
        xs = [lay.pos[p][0] for p in path]
        assert xs == sorted(xs) and len(set(xs)) == len(xs)
    markup = render(boxes, lay, title="t")
    for d in re.findall(r'class="edge"[^>]* d="([^"]+)"', markup):
        coords = [float(x) for x in re.findall(r"(-?\d+\.\d)(?=,)", d)]
        assert coords[0] < coords[-1]


def test_the_numbers_are_on_the_boxes_and_pages_are_links() -> None:
    boxes, links = boxes_links()
    markup = draw(boxes, links, title="lineage of support@v7")
    assert markup.startswith("<svg") and markup.endswith("</svg>")
    for text in (
        "1,200 rows",
        "sha256 cccccccccccc",
        "12m 03s",
        "eval_loss 0.41",
        "0.92",
        "1,234 requests",
        "99,000 tokens",
        "420 traces",
        "6 ancestors",
        "0 3 * * *",
    ):
        assert text in markup, text
    assert '<a href="/console/t/acme/adapters/support/v/6"><g class="node"' in markup
    assert '<a href="/console/t/acme/jobs/j7"><g class="node" data-node-id="job:j7"' in markup
    dataset = re.search(r'(.{12})<g class="node" data-node-id="dataset:a"', markup)
    assert dataset is not None and "<a href" not in dataset.group(1)
    assert 'class="node root" data-node-id="version:7" data-type="adapter_version"' in markup


def test_layout_is_deterministic() -> None:
    boxes, links = boxes_links()
    first = draw(boxes, links, title="x")
    assert all(draw(*boxes_links(), title="x") == first for _ in range(3))


def test_text_is_escaped() -> None:
    g = typical(dataset_name="<script>alert(1)</script>")
    boxes, links = neighbourhood(g, tenant="acme")
    markup = draw(boxes, links, title='"<title>"')
    assert "<script>" not in markup and "&lt;script&gt;" in markup
    assert "<title>&quot;&lt;title&gt;&quot;</title>" in markup


def test_barycenter_sweeps_untangle_a_crossing() -> None:
    boxes = [Box(x, "dataset", (x,)) for x in ("a", "b", "x", "y")]
    links = [Link("a", "y"), Link("b", "x")]
    lay = layout(boxes, links)
    assert count_crossings(lay) == 0
    assert lay.layers[1].index("y") < lay.layers[1].index("x")


def test_long_links_get_a_point_per_column_they_cross() -> None:
    boxes = [Box(x, "dataset", (x,)) for x in ("a", "b", "c", "d")]
    lay = layout(boxes, [Link("a", "b"), Link("b", "c"), Link("a", "c"), Link("d", "c")])
    assert lay.rank["a"] == 0 and lay.rank["c"] == 2 and lay.rank["d"] == 1
    long = next(path for link, path in lay.routes if (link.source, link.target) == ("a", "c"))
    assert len(long) == 3 and long[1].startswith("~")
    assert count_crossings(lay) == 0


def test_sixty_nodes_lay_out_fast() -> None:
    rng = random.Random(7)
    boxes = [Box(f"n{i}", "eval", (f"n{i}", "x")) for i in range(60)]
    links = [
        Link(f"n{i}", f"n{j}")
        for i in range(60)
        for j in rng.sample(range(i + 1, 60), min(2, 59 - i))
    ]
    draw(boxes, links, title="warm-up")
    start = time.perf_counter()
    lay = layout(boxes, links)
    markup = render(boxes, lay, title="big")
    took = time.perf_counter() - start
    assert took < 0.05, f"{took * 1000:.1f} ms"
    assert markup.count('class="node"') == 60
