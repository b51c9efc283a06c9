"""Bar charts as inline SVG geometry, drawn on the server: no script, no library, readable by
screen readers (each chart has a title and a text summary, each bar a tooltip)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cracker.domain.clock import rfc3339
from cracker.service.dashboard import Series

WIDTH = 640
HEIGHT = 180
_LEFT = 48
_BOTTOM = 22
_TOP = 8
#: Series beyond this many are summed into "other": colours must stay tellable apart.
MAX_SERIES = 6


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: int
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    id: str
    title: str
    summary: str
    names: list[str]
    bars: list[Bar]
    #: (y, label) of the horizontal grid lines.
    ticks: list[tuple[float, str]]
    #: (x, label) under the axis.
    labels: list[tuple[float, str]]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = _LEFT
    bottom: float = HEIGHT - _BOTTOM


def _limit(values: dict[str, list[float]]) -> dict[str, list[float]]:
    if len(values) <= MAX_SERIES:
        return values
    ranked = sorted(values, key=lambda name: -sum(values[name]))
    kept = {name: values[name] for name in ranked[: MAX_SERIES - 1]}
    rest = ranked[MAX_SERIES - 1:]
    kept["other"] = [sum(values[name][i] for name in rest) for i in range(len(values[rest[0]]))]
    return kept


def bar_chart(
    chart_id: str, title: str, series: Series, *, fmt: Callable[[float], str] = lambda v: f"{v:g}",
    bucket_label: Callable[[float], str] = lambda t: (rfc3339(t) or "")[11:16],
) -> Chart:
    """Grouped bars: one group per bucket, one bar per series."""
    values = _limit(series.values)
    names = list(values)
    n = max(1, len(series.buckets))
    peak = max((v for column in values.values() for v in column), default=0.0) or 1.0
    plot_w = WIDTH - _LEFT - 4
    plot_h = HEIGHT - _BOTTOM - _TOP
    group_w = plot_w / n
    bar_w = max(1.0, group_w * 0.8 / max(1, len(names)))
    bars: list[Bar] = []
    for s, name in enumerate(names):
        for i, value in enumerate(values[name]):
            if value <= 0:
                continue
            h = plot_h * value / peak
            x = _LEFT + i * group_w + group_w * 0.1 + s * bar_w
            label = f"{name} {bucket_label(series.buckets[i])}: {fmt(value)}"
            bars.append(Bar(round(x, 1), round(HEIGHT - _BOTTOM - h, 1), round(bar_w, 1), round(h, 1), s, label))
    ticks = [(round(HEIGHT - _BOTTOM - plot_h * f, 1), fmt(peak * f)) for f in (0.0, 0.5, 1.0)]
    step = max(1, n // 6)
    labels = [(round(_LEFT + i * group_w + group_w / 2, 1), bucket_label(series.buckets[i])) for i in range(0, n, step)]
    totals = ", ".join(f"{name} {fmt(sum(values[name]))}" for name in names) or "no data"
    return Chart(chart_id, title, f"{title}: in all {totals}; highest bar {fmt(peak if bars else 0)}.", names, bars,
                 ticks, labels)
