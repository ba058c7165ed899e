"""The numbers the overview leads with: jobs by queue.

They stay cheap at 10M jobs: the queues page's statement (oban's planner estimate per
queue and state, which reads no rows, and an exact count only where the estimate is
small), over at most ``MAX_QUEUES`` queues and three states, with a small cap. The charts
beside them (the last hour and day) read the job rollup: :mod:`.rollups`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..db import Conn
from ..display import Display
from ..seams import Resource
from . import queues as queues_model
from .common import Count

# States an operator reads a queue's health from: its backlog, what runs, what fails.
QUEUE_STATES = ("available", "executing", "retryable")
MAX_QUEUES = 12
QUEUE_CAP = 100


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


async def by_queue(conn: Conn, display: Display) -> ByQueue:
    cur = await conn.execute(queues_model.Q.queue_names, {"queue": None, "limit": MAX_QUEUES + 1})
    names = [r["queue"] for r in await cur.fetchall()]
    more = len(names) > MAX_QUEUES
    names = names[:MAX_QUEUES]
    if not names:
        return ByQueue([], False)
    counts = await queues_model.queue_counts(conn, names, states=QUEUE_STATES, cap=QUEUE_CAP)
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
