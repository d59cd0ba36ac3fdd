"""Small charts as inline SVG, drawn server-side (no script, no inline style: CSP-clean).

Every text that reaches the markup goes through `html.escape`. Each series is a `<polyline
class="series" data-series=… data-points=N>`, so tests and people can read what was drawn.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#2457c5", "#d9822b", "#1e8a4c", "#8e44ad", "#c0392b", "#16a085")


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[float, float]]  # (x, y); x in epoch seconds when the chart is timed
    color: str = ""
    dashed: bool = False


@dataclass(frozen=True)
class Marker:
    """A vertical line at `x` with a short label (e.g. a retrain the drift started)."""

    x: float
    label: str
    href: str = ""


@dataclass
class _Frame:
    x0: float
    x1: float
    y0: float
    y1: float
    width: int
    height: int
    left: int = 56
    right: int = 16
    top: int = 30
    bottom: int = 34
    ticks: list[float] = field(default_factory=list)

    def px(self, x: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (x - self.x0) / span * (self.width - self.left - self.right)

    def py(self, y: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return (
            self.height
            - self.bottom
            - (y - self.y0) / span * (self.height - self.top - self.bottom)
        )


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 5 × 10^k steps)."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    out: list[float] = []
    v = start
    while len(out) < 50:  # the last tick is at or above hi: nothing is drawn off the chart
        out.append(round(v, 12))
        if v >= hi - step * 1e-9:
            break
        v += step
    return out


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _time_label(x: float, span: float) -> str:
    t = dt.datetime.fromtimestamp(x, tz=dt.UTC)
    if span <= 2 * 86400:
        return t.strftime("%H:%M")
    if span <= 400 * 86400:
        return t.strftime("%m-%d")
    return t.strftime("%Y-%m")


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    width: int = 640,
    height: int = 220,
    x_label: str = "",
    y_label: str = "",
    timed: bool = False,
    threshold: float | None = None,
    threshold_label: str = "threshold",
    markers: Sequence[Marker] = (),
    y_min: float | None = None,
) -> str:
    """Lines over a shared x axis, an optional horizontal threshold and vertical markers."""
    xs = [x for s in series for x, _ in s.points] + [m.x for m in markers]
    ys = [y for s in series for _, y in s.points] + ([threshold] if threshold is not None else [])
    ys = [y for y in ys if math.isfinite(y)]
    label = escape(title)
    if not xs or not ys:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} 60" role="img" '
            f'aria-label="{label}" class="chart-empty"><title>{label}</title>'
            f'<text x="{width / 2}" y="34" text-anchor="middle" fill="#6a7385" font-size="13">'
            f"{label}: no data yet</text></svg>"
        )
    lo = min(ys) if y_min is None else min(y_min, min(ys))
    yt = nice_ticks(lo, max(ys))
    f = _Frame(min(xs), max(xs), yt[0], yt[-1], width, height)
    if f.x1 == f.x0:
        f.x0, f.x1 = f.x0 - 1, f.x1 + 1
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{label}" class="chart"><title>{label}</title>'
    ]
    for y in yt:
        py = f.py(y)
        out.append(
            f'<line x1="{f.left}" x2="{width - f.right}" y1="{py:.1f}" y2="{py:.1f}" '
            f'stroke="#eceff4"/><text x="{f.left - 6}" y="{py + 4:.1f}" text-anchor="end" '
            f'font-size="11" fill="#6a7385">{_fmt(y)}</text>'
        )
    xt = nice_ticks(f.x0, f.x1, 6) if not timed else _time_ticks(f.x0, f.x1)
    for x in xt:
        if f.x0 <= x <= f.x1:
            text = _time_label(x, f.x1 - f.x0) if timed else _fmt(x)
            out.append(
                f'<text x="{f.px(x):.1f}" y="{height - f.bottom + 16}" text-anchor="middle" '
                f'font-size="11" fill="#6a7385">{escape(text)}</text>'
            )
    if x_label:
        out.append(
            f'<text x="{width - f.right}" y="{height - 4}" text-anchor="end" font-size="11" '
            f'fill="#6a7385">{escape(x_label)}</text>'
        )
    if y_label:
        out.append(_y_label(y_label, f))
    if threshold is not None:
        py = f.py(threshold)
        out.append(
            f'<line class="threshold" x1="{f.left}" x2="{width - f.right}" y1="{py:.1f}" '
            f'y2="{py:.1f}" stroke="#c0392b" stroke-dasharray="6 4"/>'
            f'<text x="{width - f.right}" y="{py - 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#c0392b">{escape(threshold_label)} {_fmt(threshold)}</text>'
        )
    for m in markers:
        px = f.px(m.x)
        near_right = px > width - f.right - 7 * len(m.label) - 6
        anchor, anchor_dx = ("end", -3) if near_right else ("start", 3)
        mark = (
            f'<line class="marker" x1="{px:.1f}" x2="{px:.1f}" y1="{f.top}" '
            f'y2="{height - f.bottom}" stroke="#8e44ad" stroke-dasharray="2 3"/>'
            f'<text x="{px + anchor_dx:.1f}" y="{f.top + 10}" font-size="11" fill="#8e44ad"'
            f' text-anchor="{anchor}">'
            f"{escape(m.label)}</text>"
        )
        out.append(f'<a href="{escape(m.href)}">{mark}</a>' if m.href else mark)
    legend_x = f.left + 8
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        pts = " ".join(f"{f.px(x):.1f},{f.py(y):.1f}" for x, y in s.points if math.isfinite(y))
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        out.append(
            f'<polyline class="series" data-series="{escape(s.label)}" '
            f'data-points="{len(s.points)}" points="{pts}" fill="none" stroke="{color}" '
            f'stroke-width="1.8"{dash}/>'
        )
        if len(s.points) == 1:
            x, y = s.points[0]
            out.append(f'<circle cx="{f.px(x):.1f}" cy="{f.py(y):.1f}" r="3" fill="{color}"/>')
        out.append(
            f'<rect x="{legend_x}" y="{f.top - 14}" width="10" height="3" fill="{color}"/>'
            f'<text x="{legend_x + 14}" y="{f.top - 10}" font-size="11" fill="#1d2330">'
            f"{escape(s.label)}</text>"
        )
        legend_x += 24 + 7 * len(s.label)
    out.append("</svg>")
    return "".join(out)


def _y_label(text: str, f: _Frame) -> str:
    """The y axis's name, turned along the axis (the legend has the top line)."""
    mid = (f.top + f.height - f.bottom) / 2
    return (
        f'<text transform="rotate(-90)" x="{-mid:.1f}" y="12" text-anchor="middle" '
        f'font-size="11" fill="#6a7385">{escape(text)}</text>'
    )


def _time_ticks(x0: float, x1: float) -> list[float]:
    span = x1 - x0
    for step in (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400):
        if span / step <= 6:
            return [math.ceil(x0 / step) * step + i * step for i in range(7)]
    return [x0, x1]


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str,
    width: int = 640,
    height: int = 160,
    y_label: str = "",
    color: str = PALETTE[0],
) -> str:
    """One bar per (label, value), labels under the bars (thinned when crowded)."""
    label = escape(title)
    if not bars:
        return line_chart([], title=title, width=width)
    yt = nice_ticks(0.0, max(v for _, v in bars) or 1.0, 4)
    f = _Frame(0, len(bars), 0, yt[-1], width, height)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{label}" class="chart"><title>{label}</title>'
    ]
    for y in yt:
        py = f.py(y)
        out.append(
            f'<line x1="{f.left}" x2="{width - f.right}" y1="{py:.1f}" y2="{py:.1f}" '
            f'stroke="#eceff4"/><text x="{f.left - 6}" y="{py + 4:.1f}" text-anchor="end" '
            f'font-size="11" fill="#6a7385">{_fmt(y)}</text>'
        )
    if y_label:
        out.append(_y_label(y_label, f))
    slot = (width - f.left - f.right) / len(bars)
    every = max(1, math.ceil(len(bars) / 12))
    for i, (name, value) in enumerate(bars):
        x = f.left + i * slot + slot * 0.15
        y = f.py(value)
        out.append(
            f'<rect class="bar" data-label="{escape(name)}" data-value="{value:g}" x="{x:.1f}" '
            f'y="{y:.1f}" width="{slot * 0.7:.1f}" height="{f.py(0) - y:.1f}" fill="{color}">'
            f"<title>{escape(name)}: {_fmt(value)}</title></rect>"
        )
        if i % every == 0:
            out.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{height - f.bottom + 16}" '
                f'text-anchor="middle" font-size="11" fill="#6a7385">{escape(name)}</text>'
            )
    out.append("</svg>")
    return "".join(out)
