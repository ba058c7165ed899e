"""The sliding window of a rate limit, in whole seconds of the database's clock.

Starts are recorded in buckets of ``width(period)`` seconds (one row per queue, partition
and bucket, written in the transaction that claims the jobs). A fetch at time ``now``
counts every bucket whose end lies after ``now - period``: any bucket that overlaps the
window (now - period, now] counts whole, so the count can only be too high, never too
low, and no window of ``period`` seconds ever holds more than ``allowed`` starts. (A fixed
bucket per period would let 2x through at a boundary.) The price is that a start is
forgotten up to one bucket width late; with at most ``BUCKETS`` buckets per period that
is under 2 % of the period, and never more than one second for periods up to a minute.

Epoch seconds from the database clock: midnight, a daylight-saving change or a node
whose clock is off change nothing.
"""

from __future__ import annotations

import math

__all__ = ["BUCKETS", "bucket_end", "resets_in", "width", "window_floor"]

BUCKETS = 60


def width(period: int) -> int:
    """Seconds per bucket: 1 up to a period of a minute, then period/60 rounded up."""
    return max(1, math.ceil(period / BUCKETS))


def bucket_end(now: float, period: int) -> int:
    """The (exclusive) end, in epoch seconds, of the bucket a start at ``now`` goes in."""
    w = width(period)
    return (math.floor(now) // w + 1) * w


def window_floor(now: float, period: int) -> float:
    """Buckets ending after this count towards the window at ``now``."""
    return now - period


def resets_in(now: float, period: int, oldest_end: int) -> float:
    """Seconds until the oldest counted bucket (ending at ``oldest_end``) leaves the window."""
    return max(0.0, oldest_end + period - now)
