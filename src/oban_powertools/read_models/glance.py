"""The numbers the overview leads with: jobs by queue, and the last hour minute by minute.

Both stay cheap at 10M jobs, because neither reads more than a fixed number of index
entries, however large the table or busy the hour:

* by queue: the queues page's statement (oban's planner estimate per queue and state,
  which reads no rows, and an exact count only where the estimate is small), over at most
  ``MAX_QUEUES`` queues and three states, with a small cap;
* the last hour: per minute and series, at most ``MINUTE_CAP`` entries of the index that
  orders that series by time (oban's ``completed_at`` and ``discarded_at`` indexes,
  Powertools' ``(state, attempted_at)`` one). A busier minute is extrapolated from how long
  its first ``MINUTE_CAP`` entries took, and labelled an estimate. At most
  60 x 3 x ``MINUTE_CAP`` index entries are read; a rollup table (the telemetry issue) will
  make the series exact.

What the failure series can and cannot see: without a rollup, a failure is a job that
ended discarded in that minute, or one that now waits to retry after an attempt that
started in it. A job that failed and has since succeeded is counted once, as completed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..db import Conn
from ..db.queries import sql
from ..display import Display
from ..seams import Resource
from . import queues as queues_model
from .common import EXACT_BELOW_FACTOR, Count, bounded_count, utc

# States an operator reads a queue's health from: its backlog, what runs, what fails.
QUEUE_STATES = ("available", "executing", "retryable")
MAX_QUEUES = 12
QUEUE_CAP = 100
MINUTE_CAP = 250
MINUTES = 60

LAST_HOUR = sql("oban_jobs", "last_hour")


@dataclass(frozen=True, slots=True)
class QueueCounts:
    key: str  # the queue's stored name: the target of links
    name: str  # as the display policy shows it
    counts: dict[str, Count]

    @property
    def load(self) -> int:
        return sum(c.value for c in self.counts.values())


@dataclass(frozen=True, slots=True)
class ByQueue:
    queues: list[QueueCounts]
    more: bool  # there are queues beyond MAX_QUEUES (the queues page lists them all)
    states: tuple[str, ...] = QUEUE_STATES


def sum_counts(counts: list[Count]) -> Count:
    """A sum is only as sure as its least sure part."""
    total = sum(c.value for c in counts)
    if any(c.kind == "estimate" for c in counts):
        return Count(total, "estimate")
    if any(c.kind == "at_least" for c in counts):
        return Count(total, "at_least")
    return Count(total)


@dataclass(frozen=True, slots=True)
class Minute:
    at: datetime  # the minute's start, UTC
    completed: Count
    discarded: Count
    retryable: Count
    partial: bool = False  # the current minute, still running

    @property
    def failed(self) -> Count:
        return sum_counts([self.discarded, self.retryable])


@dataclass(frozen=True, slots=True)
class LastHour:
    minutes: list[Minute]
    cap: int = MINUTE_CAP

    def total(self, series: str) -> Count:
        return sum_counts([getattr(m, series) for m in self.minutes])

    def peak(self, series: str) -> Minute | None:
        busiest = max(self.minutes, key=lambda m: getattr(m, series).value, default=None)
        return busiest if busiest is not None and getattr(busiest, series).value else None

    @property
    def estimated(self) -> bool:
        return any(m.completed.estimated or m.failed.estimated for m in self.minutes)


async def by_queue(conn: Conn, display: Display) -> ByQueue:
    cur = await conn.execute(queues_model.QUEUE_NAMES, {"queue": None, "limit": MAX_QUEUES + 1})
    names = [r["queue"] for r in await cur.fetchall()]
    more = len(names) > MAX_QUEUES
    names = names[:MAX_QUEUES]
    if not names:
        return ByQueue([], False)
    cur = await conn.execute(
        queues_model.QUEUE_COUNTS,
        {
            "queues": names,
            "states": list(QUEUE_STATES),
            "cap": QUEUE_CAP,
            "exact_below": QUEUE_CAP * EXACT_BELOW_FACTOR,
        },
    )
    counts: dict[str, dict[str, Count]] = {q: {} for q in names}
    for row in await cur.fetchall():
        counts[row["queue"]][row["state"]] = bounded_count(row["n"], row["estimate"], QUEUE_CAP)
    rows = [
        QueueCounts(
            key=q,
            name=display.text("queue", q, resource=Resource("queue", q), field="queue"),
            counts={s: counts[q].get(s, Count(0)) for s in QUEUE_STATES},
        )
        for q in names
    ]
    # Busiest first: the queue with the most waiting, running and failing work leads.
    rows.sort(key=lambda r: (-r.load, r.key))
    return ByQueue(rows, more)


def _minute_count(n: int, last: datetime | None, start: datetime, end: datetime, cap: int) -> Count:
    """Exact below the cap; at the cap, the rate up to the last entry read, over the minute."""
    if n < cap:
        return Count(n)
    span = ((last or end) - start).total_seconds()
    whole = (end - start).total_seconds()
    if span <= 0:
        return Count(cap, "at_least")
    return Count(max(cap, round(cap * whole / span)), "estimate")


def minute_from_row(row: Mapping[str, Any], cap: int = MINUTE_CAP) -> Minute:
    start = row["minute"]
    now = row["now"]
    end = min(start + timedelta(minutes=1), now)
    return Minute(
        at=utc(start) or start,
        completed=_minute_count(row["completed"], row["completed_last"], start, end, cap),
        discarded=_minute_count(row["discarded"], row["discarded_last"], start, end, cap),
        retryable=_minute_count(row["retryable"], row["retryable_last"], start, end, cap),
        partial=end < start + timedelta(minutes=1),
    )


async def last_hour(conn: Conn, *, cap: int = MINUTE_CAP) -> LastHour:
    cur = await conn.execute(LAST_HOUR, {"minutes": MINUTES, "cap": cap})
    return LastHour([minute_from_row(r, cap) for r in await cur.fetchall()], cap)
