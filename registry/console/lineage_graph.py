"""A version's lineage drawn left to right, with its numbers on the boxes.

Pure functions over boxes and links (no database): `layout` ranks the boxes by longest path
(sources pulled right next to what they feed, so data flows left to right in adjacent
columns), puts a dummy point on every column a long link crosses, then orders each column by
barycenter sweeps (down and up, keeping the order with the fewest crossings). `render` draws
the result as inline SVG: rounded boxes coloured by type, cubic Bézier links, every text
escaped. `count_crossings` says how many link pieces cross.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

BOX_W, BOX_H, GAP_X, GAP_Y, DUMMY_H, MARGIN = 200, 58, 64, 14, 10, 12
MAX_CHARS = 29  # 11 px text in a 200 px box
TITLE_CHARS = 24  # the bold 12.5 px first line
SWEEPS = 4
# type -> (fill, stroke)
STYLE = {
    "dataset": ("#eaf2fe", "#2457c5"),
    "traffic": ("#fff6e0", "#b26a00"),
    "teacher": ("#fff6e0", "#b26a00"),
    "base_model": ("#f3ebfa", "#8e44ad"),
    "trigger": ("#fdeeee", "#c0392b"),
    "job": ("#fff1e4", "#d9822b"),
    "adapter_version": ("#e3f4ea", "#1e8a4c"),
    "eval": ("#e6f6f4", "#16a085"),
    "alias_event": ("#efeaf8", "#6c4bb4"),
    "serving": ("#edf0f5", "#4a5568"),
    "more": ("#f6f7f9", "#9aa3b5"),
}


@dataclass(frozen=True)
class Box:
    id: str
    type: str
    lines: tuple[str, ...]  # the first is the label, then the numbers
    href: str = ""
    title: str = ""  # the full text, shown on hover
    root: bool = False  # the version the page is about


@dataclass(frozen=True)
class Link:
    source: str  # drawn left of the target
    target: str
    label: str = ""


@dataclass
class Layout:
    layers: list[list[str]]  # node ids per column, top to bottom; dummies start with "~"
    rank: dict[str, int]
    routes: list[tuple[Link, list[str]]]  # each link and the ids it passes, source to target
    pos: dict[str, tuple[float, float]] = field(default_factory=dict)  # top-left corner
    width: float = 0.0
    height: float = 0.0


def _ranks(ids: Sequence[str], links: Sequence[Link]) -> dict[str, int]:
    """Longest path from the sources (Kahn's order, ties by input order); a link that would
    close a cycle is ignored. Sources then move right, next to their nearest successor."""
    index = {n: i for i, n in enumerate(ids)}
    succ: dict[str, list[str]] = {n: [] for n in ids}
    indeg = dict.fromkeys(ids, 0)
    for ln in links:
        succ[ln.source].append(ln.target)
        indeg[ln.target] += 1
    rank = dict.fromkeys(ids, 0)
    done: set[str] = set()
    ready = [n for n in ids if indeg[n] == 0]
    while len(done) < len(ids):
        if not ready:  # a cycle: break it at the first node left
            ready = [min((n for n in ids if n not in done), key=index.__getitem__)]
        ready.sort(key=index.__getitem__)
        n = ready.pop(0)
        if n in done:
            continue
        done.add(n)
        for m in succ[n]:
            if m in done:
                continue
            rank[m] = max(rank[m], rank[n] + 1)
            indeg[m] -= 1
            if indeg[m] == 0:
                ready.append(m)
    has_pred = {ln.target for ln in links}
    for n in ids:
        later = [rank[m] for m in succ[n] if rank[m] > rank[n]]
        if n not in has_pred and later:
            rank[n] = min(later) - 1
    low = min(rank.values(), default=0)
    return {n: r - low for n, r in rank.items()}


def _crossings_between(upper: list[str], lower: list[str], pieces: list[tuple[str, str]]) -> int:
    iu = {n: i for i, n in enumerate(upper)}
    il = {n: i for i, n in enumerate(lower)}
    segs = [(iu[a], il[b]) for a, b in pieces if a in iu and b in il]
    count = 0
    for i, (a1, b1) in enumerate(segs):
        for a2, b2 in segs[i + 1 :]:
            if (a1 - a2) * (b1 - b2) < 0:
                count += 1
    return count


def _pieces(routes: list[tuple[Link, list[str]]]) -> list[tuple[str, str]]:
    return [(path[i], path[i + 1]) for _, path in routes for i in range(len(path) - 1)]


def count_crossings(lay: Layout) -> int:
    """How many pairs of link pieces cross between adjacent columns."""
    pieces = _pieces(lay.routes)
    return sum(
        _crossings_between(lay.layers[r], lay.layers[r + 1], pieces)
        for r in range(len(lay.layers) - 1)
    )


def _sweep(layers: list[list[str]], pieces: list[tuple[str, str]], down: bool) -> None:
    preds: dict[str, list[str]] = {}
    succs: dict[str, list[str]] = {}
    for a, b in pieces:
        succs.setdefault(a, []).append(b)
        preds.setdefault(b, []).append(a)
    order = range(1, len(layers)) if down else range(len(layers) - 2, -1, -1)
    for r in order:
        near = layers[r - 1] if down else layers[r + 1]
        layers[r] = _by_barycenter(layers[r], near, preds if down else succs)


def _by_barycenter(layer: list[str], near: list[str], links: dict[str, list[str]]) -> list[str]:
    """`layer` sorted by the mean position of each node's neighbours in `near` (scaled to this
    layer's size); a node without any keeps its place. Ties keep the current order."""
    where = {n: i for i, n in enumerate(near)}
    scale = len(layer) / max(len(near), 1)
    keyed = []
    for i, n in enumerate(layer):
        seen = [where[m] for m in links.get(n, []) if m in where]
        keyed.append((sum(seen) / len(seen) * scale if seen else float(i), i, n))
    return [n for _, _, n in sorted(keyed)]


def layout(boxes: Sequence[Box], links: Sequence[Link]) -> Layout:
    """Columns by rank, dummies on long links, then barycenter ordering (fewest crossings)."""
    ids = [b.id for b in boxes]
    known = set(ids)
    kept = [ln for ln in links if ln.source in known and ln.target in known]
    rank = _ranks(ids, kept)
    kept = [ln for ln in kept if rank[ln.target] > rank[ln.source]]  # cycle links dropped
    layers: list[list[str]] = [[] for _ in range(max(rank.values(), default=-1) + 1)]
    for n in ids:
        layers[rank[n]].append(n)
    routes: list[tuple[Link, list[str]]] = []
    for k, ln in enumerate(kept):
        path = [ln.source]
        for r in range(rank[ln.source] + 1, rank[ln.target]):
            dummy = f"~{k}:{r}"
            rank[dummy] = r
            layers[r].append(dummy)
            path.append(dummy)
        routes.append((ln, [*path, ln.target]))
    pieces = _pieces(routes)
    lay = Layout(layers=[list(x) for x in layers], rank=rank, routes=routes)
    best, best_layers = count_crossings(lay), [list(x) for x in layers]
    for _ in range(SWEEPS):
        if best == 0:
            break
        for down in (True, False):
            _sweep(layers, pieces, down)
            lay.layers = layers
            found = count_crossings(lay)
            if found < best:
                best, best_layers = found, [list(x) for x in layers]
    lay.layers = best_layers
    _place(lay)
    return lay


def _height(layer: list[str]) -> float:
    sizes = [DUMMY_H if n.startswith("~") else BOX_H for n in layer]
    return sum(sizes) + GAP_Y * max(len(sizes) - 1, 0)


def _place(lay: Layout) -> None:
    tallest = max((_height(layer) for layer in lay.layers), default=0.0)
    for r, layer in enumerate(lay.layers):
        x = MARGIN + r * (BOX_W + GAP_X)
        y = MARGIN + (tallest - _height(layer)) / 2
        for n in layer:
            lay.pos[n] = (x, y)
            y += (DUMMY_H if n.startswith("~") else BOX_H) + GAP_Y
    lay.width = 2 * MARGIN + max(len(lay.layers), 1) * (BOX_W + GAP_X) - GAP_X
    lay.height = 2 * MARGIN + max(tallest, BOX_H)


def _clip(text: str, most: int = MAX_CHARS) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _path(lay: Layout, path: list[str]) -> tuple[str, tuple[float, float], tuple[float, float]]:
    """A cubic Bézier from the source's right side to the target's left, straight across the
    columns it passes."""
    points: list[tuple[float, float]] = []
    for i, n in enumerate(path):
        x, y = lay.pos[n]
        mid = y + (DUMMY_H if n.startswith("~") else BOX_H) / 2
        if i > 0:
            points.append((x, mid))
        if i < len(path) - 1:
            points.append((x + BOX_W, mid))
    d = [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
    for i in range(1, len(points)):
        (x1, y1), (x2, y2) = points[i - 1], points[i]
        if i % 2 == 0:  # across a dummy's column
            d.append(f"L{x2:.1f},{y2:.1f}")
            continue
        c = (x2 - x1) / 2
        d.append(f"C{x1 + c:.1f},{y1:.1f} {x2 - c:.1f},{y2:.1f} {x2:.1f},{y2:.1f}")
    return " ".join(d), points[0], points[-1]


def render(boxes: Sequence[Box], lay: Layout, *, title: str) -> str:
    """The laid-out graph as SVG: links under boxes; a box with a page is a link to it."""
    label = escape(title)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {lay.width:.0f} '
        f'{lay.height:.0f}" width="{lay.width:.0f}" class="lineage" role="img" '
        f'aria-label="{label}"><title>{label}</title>'
        '<defs><marker id="lineage-arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#8a93a6"/></marker>'
        "</defs>"
    ]
    fan_out: dict[str, int] = {}
    for ln, _ in lay.routes:
        fan_out[ln.source] = fan_out.get(ln.source, 0) + 1
    for ln, path in lay.routes:
        d, (sx, sy), (tx, ty) = _path(lay, path)
        out.append(
            f'<path class="edge" data-source="{escape(ln.source)}" '
            f'data-target="{escape(ln.target)}" d="{d}" fill="none" stroke="#9aa3b5" '
            'stroke-width="1.4" marker-end="url(#lineage-arrow)"/>'
        )
        if ln.label:
            at_source = fan_out[ln.source] == 1
            x, y, anchor = (sx + 5, sy - 4, "start") if at_source else (tx - 9, ty - 4, "end")
            out.append(
                f'<text class="edge-label" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" '
                f'font-size="10" fill="#6a7385">{escape(ln.label)}</text>'
            )
    for b in boxes:
        if b.id not in lay.pos:
            continue
        x, y = lay.pos[b.id]
        fill, stroke = STYLE.get(b.type, STYLE["more"])
        width = 2.4 if b.root else 1.2
        cls = "node root" if b.root else "node"
        g = [
            f'<g class="{cls}" data-node-id="{escape(b.id)}" data-type="{escape(b.type)}">'
            f"<title>{escape(b.title or ' · '.join(b.lines))}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{BOX_W}" height="{BOX_H}" rx="7" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>'
        ]
        for i, line in enumerate(b.lines[:3]):
            weight = ' font-weight="600"' if i == 0 else ""
            size = 12.5 if i == 0 else 11
            color = "#1d2330" if i == 0 else "#4a5568"
            text = escape(_clip(line, TITLE_CHARS if i == 0 else MAX_CHARS))
            g.append(
                f'<text x="{x + 9:.1f}" y="{y + 17 + i * 15:.1f}" font-size="{size}" '
                f'fill="{color}"{weight}>{text}</text>'
            )
        g.append("</g>")
        node = "".join(g)
        out.append(f'<a href="{escape(b.href)}">{node}</a>' if b.href else node)
    out.append("</svg>")
    return "".join(out)


def draw(boxes: Sequence[Box], links: Sequence[Link], *, title: str) -> str:
    return render(boxes, layout(boxes, links), title=title)
