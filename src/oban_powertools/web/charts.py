"""Server-rendered bar charts: the geometry of an inline SVG, computed here, drawn by a macro.

No JavaScript and no chart library: the page stays one HTML response that works with
scripts off. Each chart carries a title and a description for assistive technology
(the SVG is ``role="img"``), and the page shows the same numbers as a table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..read_models.common import Count
from ..read_models.glance import LastHour, Minute

WIDTH = 360
HEIGHT = 112
LEFT = 40  # room for the y-axis labels
RIGHT = 4
TOP = 8
PLOT_HEIGHT = 80

type Series = Literal["completed", "failed"]


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str  # the segment's class: its colour comes from the stylesheet
    label: str  # the bar's tooltip


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass(frozen=True, slots=True)
class Chart:
    id: str
    title: str
    desc: str
    bars: list[Bar]
    ticks: list[Tick]
    baseline: float
    legend: list[tuple[str, str]]  # (css class, label) per segment kind
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT


def in_words(count: Count) -> str:
    """A count for a sentence a screen reader reads out ("about 1,200", not "~1,200")."""
    if count.kind == "estimate":
        return f"about {count.value:,}"
    if count.kind == "at_least":
        return f"at least {count.value:,}"
    return f"{count.value:,}"


def nice_ceiling(value: int) -> int:
    """The axis maximum: the next 1, 2 or 5 times a power of ten at or above ``value``."""
    if value <= 1:
        return 1
    power = int(10 ** math.floor(math.log10(value)))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _segments(minute: Minute, series: Series) -> list[tuple[str, Count, str]]:
    if series == "completed":
        return [("bar-completed", minute.completed, "completed")]
    return [
        ("bar-discarded", minute.discarded, "discarded"),
        ("bar-retryable", minute.retryable, "now retryable"),
    ]


def minute_chart(hour: LastHour, series: Series) -> Chart:
    """Bars per minute of ``series`` (failures stacked: discarded below, retryable above)."""
    minutes = hour.minutes
    peak_minute = hour.peak(series)
    peak = getattr(peak_minute, series).value if peak_minute else 0
    top = nice_ceiling(peak)
    slot = (WIDTH - LEFT - RIGHT) / max(len(minutes), 1)
    base = TOP + PLOT_HEIGHT
    bars = []
    for i, minute in enumerate(minutes):
        x = LEFT + i * slot + slot * 0.1
        y = float(base)
        at = f"{minute.at:%H:%M} UTC{' (so far)' if minute.partial else ''}"
        for css, count, words in _segments(minute, series):
            if count.value <= 0:
                continue
            h = PLOT_HEIGHT * count.value / top
            y -= h
            bars.append(
                Bar(
                    round(x, 2),
                    round(y, 2),
                    round(slot * 0.8, 2),
                    round(h, 2),
                    css,
                    f"{at}: {count} {words}",
                )
            )
    ticks = [
        Tick(LEFT - 4, base, "0", "end"),
        Tick(LEFT - 4, TOP + 8, f"{top:,}", "end"),
        Tick(LEFT, HEIGHT - 4, "60 min ago", "start"),
        Tick(LEFT + (WIDTH - LEFT - RIGHT) / 2, HEIGHT - 4, "30 min ago"),
        Tick(WIDTH - RIGHT, HEIGHT - 4, "now", "end"),
    ]
    total = hour.total(series)
    if series == "completed":
        title = "Completed jobs per minute, last hour"
        desc = f"{in_words(total)} jobs completed in the last hour"
        legend = [("bar-completed", "completed")]
    else:
        title = "Failed jobs per minute, last hour"
        desc = (
            f"{in_words(total)} failures in the last hour: "
            f"{in_words(hour.total('discarded'))} discarded, "
            f"{in_words(hour.total('retryable'))} now waiting to retry"
        )
        legend = [("bar-discarded", "discarded"), ("bar-retryable", "now retryable")]
    if peak_minute is not None:
        busiest = in_words(getattr(peak_minute, series))
        desc += f"; the busiest minute, {peak_minute.at:%H:%M} UTC, had {busiest}."
    else:
        desc += "; none in any minute."
    return Chart(f"chart-{series}", title, desc, bars, ticks, base, legend)
