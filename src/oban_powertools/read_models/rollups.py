"""What the charts show: throughput, failures and queue wait over the last hour or day.

Read only from the job rollup (``powertools_job_rollups``, written by the leader's
:mod:`~oban_powertools.runtime.rollup` once a minute), never from ``oban_jobs``: a chart
costs the same at 10M jobs as at 10, and its numbers are exact. The last hour is 60
minute rows; the last day is 24 hourly buckets summed from the minute rows.

The rollup writes a minute once it closed, a few seconds after: the current minute (and
any minute after the last one written, say while no leader runs the runtime) is shown as
*not yet rolled up*, never as zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ..db import Conn, Database
from ..db.queries import Statements
from .common import Count, now_utc, utc

type Window = Literal["hour", "day"]
WINDOWS: tuple[Window, ...] = ("hour", "day")

Q = Statements(job_rollups="minutes hours progress")

STEP: dict[Window, timedelta] = {"hour": timedelta(minutes=1), "day": timedelta(hours=1)}
BUCKETS: dict[Window, int] = {"hour": 60, "day": 24}


def window_of(value: str | None) -> Window:
    """The window a page's ``?window=`` asks for; anything else is the last hour."""
    return "day" if value == "day" else "hour"


@dataclass(frozen=True, slots=True)
class Bucket:
    at: datetime  # the bucket's start, UTC
    completed: Count
    discarded: Count
    retried: Count
    cancelled: Count
    wait_count: int = 0
    wait_ms_sum: int = 0
    wait_ms_max: int = 0
    pending: bool = False  # not (wholly) rolled up yet: the current minute or hour

    @property
    def failed(self) -> Count:
        """Failures: jobs discarded, and attempts that errored and were retried."""
        return Count(self.discarded.value + self.retried.value)

    @property
    def wait(self) -> Count:
        """The mean queue wait of the attempts started in the bucket, in milliseconds."""
        return Count(round(self.wait_ms_sum / self.wait_count) if self.wait_count else 0)

    @property
    def wait_max(self) -> Count:
        return Count(self.wait_ms_max)


@dataclass(frozen=True, slots=True)
class Activity:
    window: Window
    buckets: list[Bucket]
    queue: str | None  # None: every queue
    written_through: datetime | None  # the end of the last minute the rollup wrote
    written_by: str | None

    @property
    def step(self) -> timedelta:
        return STEP[self.window]

    def total(self, series: str) -> Count:
        if series == "wait":
            count = sum(b.wait_count for b in self.buckets)
            return Count(round(sum(b.wait_ms_sum for b in self.buckets) / count) if count else 0)
        return Count(sum(getattr(b, series).value for b in self.buckets))

    def peak(self, series: str) -> Bucket | None:
        busiest = max(self.buckets, key=lambda b: getattr(b, series).value, default=None)
        return busiest if busiest is not None and getattr(busiest, series).value else None

    @property
    def empty(self) -> bool:
        """Nothing finished or started in the whole window."""
        return not any(
            b.completed.value or b.failed.value or b.cancelled.value or b.wait_count
            for b in self.buckets
        )

    @property
    def attempts(self) -> int:
        return sum(b.wait_count for b in self.buckets)


def _bucket(row: Mapping[str, Any] | None, at: datetime, pending: bool) -> Bucket:
    if row is None:
        return Bucket(at, Count(0), Count(0), Count(0), Count(0), pending=pending)
    return Bucket(
        at,
        Count(int(row["completed"])),
        Count(int(row["discarded"])),
        Count(int(row["retried"])),
        Count(int(row["cancelled"])),
        int(row["wait_count"]),
        int(row["wait_ms_sum"]),
        int(row["wait_ms_max"]),
        pending=pending,
    )


async def activity(
    conn: Conn, window: Window = "hour", *, queue: str | None = None, now: datetime | None = None
) -> Activity:
    """The window's buckets, oldest first, ending with the current minute (or hour)."""
    now = (now or now_utc()).astimezone(UTC)
    step = STEP[window]
    if window == "hour":
        current = now.replace(second=0, microsecond=0)
    else:
        current = now.replace(minute=0, second=0, microsecond=0)
    since = current - step * (BUCKETS[window] - 1)
    cur = await conn.execute(Q.progress)
    progress = await cur.fetchone()
    through = utc(progress["written_through"]) if progress else None
    statement = Q.minutes if window == "hour" else Q.hours
    cur = await conn.execute(statement, {"since": since.replace(tzinfo=None), "queue": queue})
    rows = {utc(r["minute"]): r for r in await cur.fetchall()}
    buckets = []
    for i in range(BUCKETS[window]):
        at = since + step * i
        pending = through is None or at + step > through
        buckets.append(_bucket(rows.get(at), at, pending))
    return Activity(window, buckets, queue, through, progress["written_by"] if progress else None)


async def load(db: Database, window: Window = "hour", *, queue: str | None = None) -> Activity:
    """:func:`activity` on a connection of its own (a queue's page)."""
    async with db.connection() as conn:
        return await activity(conn, window, queue=queue)
