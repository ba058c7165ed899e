"""How much of each limit is in use, for the pages and the explainer.

Read from the same rows the fetch counts (executing jobs, the starts table), so what an
operator sees is what the next fetch will decide on; never a scan of finished jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ..db import Conn
from ..db.queries import Statements
from . import window
from .store import StoredLimits, load_stored

__all__ = ["LimitUse", "PartitionUse", "limit_use", "partition_use"]

Q = Statements(queue_limits="limit_use partition_use")
SHOW_IDS = 20


@dataclass(frozen=True, slots=True)
class LimitUse:
    """One limited queue's use now."""

    stored: StoredLimits
    running: int  # jobs of the queue executing on any node
    partitions_at_global: int  # partitioned global limit: partitions at their limit
    started: int  # unpartitioned rate limit: starts in the window
    partitions_at_rate: int  # partitioned rate limit: partitions that spent theirs
    window_resets_at: datetime | None  # when the oldest counted start leaves the window

    @property
    def queue(self) -> str:
        return self.stored.queue

    @property
    def global_full(self) -> bool:
        g = self.stored.limits.global_limit
        return g is not None and g.partition is None and self.running >= g.allowed

    @property
    def rate_spent(self) -> bool:
        r = self.stored.limits.rate_limit
        return r is not None and r.partition is None and self.started >= r.allowed

    @property
    def saturated(self) -> bool:
        """A limit holds back every job of the queue (or some partition's)."""
        return (
            self.global_full
            or self.rate_spent
            or self.partitions_at_global > 0
            or self.partitions_at_rate > 0
        )


@dataclass(frozen=True, slots=True)
class PartitionUse:
    """One partition of a limited queue (key ``''`` for a queue without partitions)."""

    queue: str
    key: str
    running: int
    running_ids: tuple[int, ...]  # the first executing jobs that count against its limit
    started: int
    window_resets_at: datetime | None
    turn: str | None  # the partition the round-robin served last


def _resets_at(now: float, period: int | None, oldest: int | None) -> datetime | None:
    if period is None or oldest is None:
        return None
    return datetime.fromtimestamp(now + window.resets_in(now, period, oldest), UTC)


async def limit_use(conn: Conn, queue: str | None = None) -> dict[str, LimitUse]:
    """Every limited queue's use (or one queue's)."""
    stored = await load_stored(conn)
    cur = await conn.execute(Q.limit_use, {"queue": queue})
    out: dict[str, LimitUse] = {}
    for row in await cur.fetchall():
        s = stored.get(row["queue"])
        if s is None or s.limits.empty:
            continue
        rate = s.limits.rate_limit
        out[row["queue"]] = LimitUse(
            stored=s,
            running=int(row["running"]),
            partitions_at_global=int(row["partitions_at_global"]),
            started=int(row["started"]),
            partitions_at_rate=int(row["partitions_at_rate"]),
            window_resets_at=_resets_at(
                float(row["now_epoch"]), rate.period if rate else None, row["oldest_bucket"]
            ),
        )
    return out


async def partition_use(conn: Conn, stored: StoredLimits, key: str) -> PartitionUse | None:
    """One partition's use (``key`` is a job's ``meta.partition_key``; ``''`` for a queue
    without partitions, whose window is the whole queue's)."""
    cur = await conn.execute(Q.partition_use, {"queue": stored.queue, "key": key, "show": SHOW_IDS})
    row = await cur.fetchone()
    if row is None:
        return None
    rate = stored.limits.rate_limit
    return PartitionUse(
        queue=stored.queue,
        key=key,
        running=int(row["running"]),
        running_ids=tuple(row["running_ids"]),
        started=int(row["started"]),
        window_resets_at=_resets_at(
            float(row["now_epoch"]), rate.period if rate else None, row["oldest_bucket"]
        ),
        turn=row["turn"],
    )
