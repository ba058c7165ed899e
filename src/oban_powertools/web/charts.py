"""Server-rendered bar charts: the geometry of an inline SVG, computed here, drawn by a macro.

No JavaScript and no chart library: the page stays one HTML response that works with
scripts off. Each chart carries a title and a description for assistive technology
(the SVG is ``role="img"``), and the page shows the same numbers as a table. The numbers
come from the job rollup (:mod:`..read_models.rollups`): the last hour per minute or the
last day per hour, for all queues or one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..read_models.common import Count
from ..read_models.rollups import Activity, Bucket

WIDTH = 360
HEIGHT = 112
LEFT = 40  # room for the y-axis labels
RIGHT = 4
TOP = 8
PLOT_HEIGHT = 80

type Series = Literal["completed", "failed", "wait"]
SERIES: tuple[Series, ...] = ("completed", "failed", "wait")


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


def wait_text(ms: int) -> str:
    """A queue wait for a label or a sentence: milliseconds, seconds or minutes."""
    if ms < 1000:
        return f"{ms:,} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms / 60_000:.1f} min"


def nice_wait_ceiling(ms: int) -> int:
    """The wait axis maximum in whole milliseconds, seconds or minutes (2 min, not 1.7)."""
    for unit in (60_000, 1000):
        if ms > unit:
            return nice_ceiling(math.ceil(ms / unit)) * unit
    return nice_ceiling(ms)


def _segments(bucket: Bucket, series: Series) -> list[tuple[str, Count, str]]:
    if series == "completed":
        return [("bar-completed", bucket.completed, "completed")]
    if series == "wait":
        return [("bar-wait", bucket.wait, "mean wait")]
    return [
        ("bar-discarded", bucket.discarded, "discarded"),
        ("bar-retryable", bucket.retried, "errored and retried"),
    ]


def _words(series: Series, count: Count) -> str:
    return wait_text(count.value) if series == "wait" else in_words(count)


TITLES: dict[Series, str] = {
    "completed": "Completed jobs per {step}, last {window}",
    "failed": "Failures per {step}, last {window}",
    "wait": "Mean queue wait per {step}, last {window}",
}


def activity_chart(activity: Activity, series: Series) -> Chart:
    """Bars per bucket of ``series`` (failures stacked: discarded below, retried above)."""
    buckets = activity.buckets
    peak_bucket = activity.peak(series)
    peak = getattr(peak_bucket, series).value if peak_bucket else 0
    top = nice_wait_ceiling(peak) if series == "wait" else nice_ceiling(peak)
    slot = (WIDTH - LEFT - RIGHT) / max(len(buckets), 1)
    base = TOP + PLOT_HEIGHT
    hourly = activity.window == "day"
    bars = []
    for i, bucket in enumerate(buckets):
        x = LEFT + i * slot + slot * 0.1
        y = float(base)
        at = f"{bucket.at:%H:%M} UTC{' (not yet rolled up)' if bucket.pending else ''}"
        for css, count, words in _segments(bucket, series):
            if count.value <= 0:
                continue
            h = PLOT_HEIGHT * count.value / top
            y -= h
            text = wait_text(count.value) if series == "wait" else str(count)
            bars.append(
                Bar(
                    round(x, 2),
                    round(y, 2),
                    round(slot * 0.8, 2),
                    round(h, 2),
                    css,
                    f"{at}: {text} {words}",
                )
            )
    far, half = ("24 h ago", "12 h ago") if hourly else ("60 min ago", "30 min ago")
    ticks = [
        Tick(LEFT - 4, base, "0", "end"),
        Tick(LEFT - 4, TOP + 8, wait_text(top) if series == "wait" else f"{top:,}", "end"),
        Tick(LEFT, HEIGHT - 4, far, "start"),
        Tick(LEFT + (WIDTH - LEFT - RIGHT) / 2, HEIGHT - 4, half),
        Tick(WIDTH - RIGHT, HEIGHT - 4, "now", "end"),
    ]
    window, step = ("day", "hour") if hourly else ("hour", "minute")
    title = TITLES[series].format(step=step, window=window)
    total = activity.total(series)
    if series == "completed":
        desc = f"{in_words(total)} jobs completed in the last {window}"
        legend = [("bar-completed", "completed")]
    elif series == "wait":
        desc = (
            f"{activity.attempts:,} attempts started in the last {window}, waiting "
            f"{wait_text(total.value)} on average between scheduled and started"
        )
        legend = [("bar-wait", "mean wait")]
    else:
        desc = (
            f"{in_words(total)} failures in the last {window}: "
            f"{in_words(activity.total('discarded'))} discarded, "
            f"{in_words(activity.total('retried'))} errored and retried"
        )
        legend = [("bar-discarded", "discarded"), ("bar-retryable", "errored and retried")]
    if peak_bucket is not None:
        most = "longest" if series == "wait" else "busiest"
        desc += (
            f"; the {most} {step}, {peak_bucket.at:%H:%M} UTC, had "
            f"{_words(series, getattr(peak_bucket, series))}."
        )
    else:
        desc += f"; none in any {step}."
    return Chart(f"chart-{series}", title, desc, bars, ticks, base, legend)
