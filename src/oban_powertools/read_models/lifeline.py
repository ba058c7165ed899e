"""The lifeline's view: orphaned and stuck executing jobs, counted and sampled by queue.

*Orphaned*: executing, and its producer (``attempted_by[2]``) has no heartbeat within
``Config.lifeline_grace_seconds``; the lifeline rescues it at its next pass after
``last heartbeat + grace``. *Stuck*: executing on a live producer for longer than
``Config.stuck_after_seconds``; nothing touches it unless an operator discards it.

Both statements read executing jobs only, through Powertools' (state, attempted_at)
index, at most ``scan`` of them oldest first: their cost follows the number of executing
jobs, not the size of the table. ``lifeline.sql: executing_counts`` counts them per queue
in the database (:func:`lifeline_counts`, also for exporters); ``executing_sample`` then
returns the evidence of the oldest few of each kind per queue, limited in SQL
(:func:`lifeline`). A page thus gets counts and a handful of rows however many jobs are
orphaned; the repairs find their exact set themselves, at preview
(``actions/lifeline.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from ..db import Conn
from ..db.queries import Statements
from ..display import Display
from ..seams import Resource
from .common import Count, now_utc, utc

Q = Statements(lifeline="executing_sample executing_counts")

# Executing jobs looked at per read (oldest first).
SCAN = 10_000
# Orphaned and stuck jobs per queue whose evidence a read returns (oldest first).
EACH = 3
# A rescue this late means no lifeline pass ran (oban's lifeline interval is 60 s).
OVERDUE_AFTER = 120


@dataclass(frozen=True, slots=True)
class LifelineJob:
    """An orphaned or stuck job of a queue's evidence sample. Its text fields are as stored
    until :func:`shown` asks the display policy for them (a page asks about the jobs the
    viewer may see only)."""

    id: int
    queue: str  # as the display policy shows it, once shown
    queue_key: str  # as stored: the target of links and actions
    worker: str
    attempt: int
    max_attempts: int
    attempted_at: datetime | None
    running_seconds: int | None
    node: str
    producer: str
    last_heartbeat: datetime | None  # None: the producer's row is gone
    orphaned: bool
    rescue_at: datetime | None  # when the lifeline rescues it (~): heartbeat + grace
    overdue: bool = False  # rescue_at has passed: no lifeline ran since
    displayed: bool = False

    @property
    def stuck(self) -> bool:
        return not self.orphaned


def shown(job: LifelineJob, display: Display) -> LifelineJob:
    """``job`` with its text as the display policy shows it (the one redaction path)."""
    if job.displayed:
        return job
    resource = Resource("job", str(job.id))

    def text(kind: str, value: str) -> str:
        return display.text(kind, value, resource=resource, field=kind)

    return replace(
        job,
        queue=text("queue", job.queue_key),
        worker=text("worker", job.worker),
        node=text("node", job.node),
        producer=text("producer", job.producer),
        displayed=True,
    )


@dataclass(slots=True)
class QueueLifeline:
    """One queue's orphaned and stuck jobs: how many (counted in the database), and the
    evidence of the oldest few of each kind (the sample)."""

    key: str
    name: str  # as the display policy shows it, once shown
    orphaned_count: int = 0
    stuck_count: int = 0
    orphaned: list[LifelineJob] = field(default_factory=list)  # the sample, oldest first
    stuck: list[LifelineJob] = field(default_factory=list)

    def evidence(self, display: Display) -> QueueLifeline:
        """This queue with its name and its sampled jobs as the display policy shows them."""
        sampled = self.orphaned or self.stuck
        resource = Resource("job", str(sampled[0].id)) if sampled else Resource("queue", self.key)
        name = display.text("queue", self.key, resource=resource, field="queue")
        return replace(
            self,
            name=name,
            orphaned=[shown(j, display) for j in self.orphaned],
            stuck=[shown(j, display) for j in self.stuck],
        )


@dataclass(frozen=True, slots=True)
class Lifeline:
    by_queue: list[QueueLifeline]
    orphaned_count: Count
    stuck_count: Count
    orphaned_producers: int
    grace_seconds: float
    stuck_after_seconds: int
    each: int  # sampled jobs of each kind per queue

    @property
    def clear(self) -> bool:
        return not self.orphaned_count.value and not self.stuck_count.value


@dataclass(frozen=True, slots=True)
class QueueCounts:
    orphaned: int
    stuck: int


@dataclass(frozen=True, slots=True)
class LifelineCounts:
    """Raw counts for exporters (no display policy: label values are the exporter's)."""

    orphaned: int
    stuck: int
    orphaned_producers: int
    by_queue: Mapping[str, QueueCounts]
    capped: bool  # a lower bound: ``scan`` executing jobs were looked at, there may be more


def _producer_key(row: Mapping[str, Any]) -> tuple[str, str]:
    return (str(row["node"] or ""), str(row["producer"] or ""))


async def lifeline_counts(
    conn: Conn,
    *,
    grace: float,
    stuck_after: int,
    scan: int = SCAN,
) -> LifelineCounts:
    """Orphaned and stuck executing jobs, in all and per queue, over the ``scan`` oldest
    executing jobs, counted in the database (one statement)."""
    cur = await conn.execute(
        Q.executing_counts, {"grace": grace, "stuck_after": stuck_after, "scan": scan}
    )
    by_queue: dict[str, list[int]] = {}
    producers: set[tuple[str, str]] = set()
    scanned = 0
    for r in await cur.fetchall():
        counts = by_queue.setdefault(r["queue"], [0, 0])
        counts[0] += r["orphaned"]
        counts[1] += r["stuck"]
        scanned += r["scanned"]
        if r["orphaned"]:
            producers.add(_producer_key(r))
    return LifelineCounts(
        orphaned=sum(c[0] for c in by_queue.values()),
        stuck=sum(c[1] for c in by_queue.values()),
        orphaned_producers=len(producers),
        by_queue={q: QueueCounts(c[0], c[1]) for q, c in sorted(by_queue.items()) if c[0] or c[1]},
        capped=scanned >= scan,
    )


def _job(r: Mapping[str, Any], grace: float, overdue_before: datetime) -> LifelineJob:
    heartbeat = utc(r["last_heartbeat"])
    live = bool(r["producer_live"])
    rescue_at = None if live or heartbeat is None else heartbeat + timedelta(seconds=grace)
    return LifelineJob(
        id=int(r["id"]),
        queue=r["queue"],
        queue_key=r["queue"],
        worker=r["worker"],
        attempt=r["attempt"],
        max_attempts=r["max_attempts"],
        attempted_at=utc(r["attempted_at"]),
        running_seconds=r["running_seconds"],
        node=r["node"] or "unknown node",
        producer=r["producer"] or "unknown",
        last_heartbeat=heartbeat,
        orphaned=not live,
        rescue_at=rescue_at,
        overdue=rescue_at is not None and rescue_at < overdue_before,
    )


async def lifeline(
    conn: Conn,
    *,
    grace: float,
    stuck_after: int,
    scan: int = SCAN,
    each: int = EACH,
) -> Lifeline:
    """Orphaned and stuck jobs per queue: counts (:func:`lifeline_counts`) and the
    evidence of the ``each`` oldest of each kind, as stored (see :func:`shown`)."""
    counts = await lifeline_counts(conn, grace=grace, stuck_after=stuck_after, scan=scan)
    queues = {
        key: QueueLifeline(key, key, c.orphaned, c.stuck) for key, c in counts.by_queue.items()
    }
    # What to sample: each (queue, kind) counted, as many as it has up to ``each``, so
    # every lateral read of the sample stops as soon as it has them.
    wanted = [
        (key, kind_orphaned, min(each, n))
        for key, c in counts.by_queue.items()
        for kind_orphaned, n in ((True, c.orphaned), (False, c.stuck))
        if n and each > 0
    ]
    if wanted:
        cur = await conn.execute(
            Q.executing_sample,
            {
                "grace": grace,
                "stuck_after": stuck_after,
                "scan": scan,
                "queues": [w[0] for w in wanted],
                "orphaned": [w[1] for w in wanted],
                "take": [w[2] for w in wanted],
            },
        )
        overdue_before = now_utc() - timedelta(seconds=OVERDUE_AFTER)
        for r in await cur.fetchall():
            group = queues.get(r["queue"])
            if group is None:  # a job that began executing between the two reads
                continue
            job = _job(r, grace, overdue_before)
            (group.orphaned if job.orphaned else group.stuck).append(job)
    capped = counts.capped
    return Lifeline(
        by_queue=[queues[k] for k in sorted(queues)],
        orphaned_count=Count(counts.orphaned, "at_least" if capped else "exact"),
        stuck_count=Count(counts.stuck, "at_least" if capped else "exact"),
        orphaned_producers=counts.orphaned_producers,
        grace_seconds=grace,
        stuck_after_seconds=stuck_after,
        each=each,
    )


def orphan_sentence(
    *,
    node: str,
    producer: str | None,
    last_heartbeat: datetime | None,
    grace: float,
    now: datetime,
) -> str | None:
    """What the lifeline says about an executing job, or None while its producer lives:
    "executing on node X whose producer stopped heartbeating at T; the lifeline will
    rescue it at ~T+grace" (the job page's forensics and the explainer say the same)."""
    who = f"producer {producer}" if producer else "producer"
    if last_heartbeat is None:
        return (
            f"executing on node {node} whose {who} is gone (no oban_producers row); the "
            "lifeline will rescue it at its next pass"
        )
    if now - last_heartbeat < timedelta(seconds=grace):
        return None
    due = last_heartbeat + timedelta(seconds=grace)
    stamp = f"{last_heartbeat:%Y-%m-%d %H:%M:%S} UTC"
    when = f"~{due:%Y-%m-%d %H:%M:%S} UTC"
    if due < now - timedelta(seconds=OVERDUE_AFTER):
        rescue = (
            f"the lifeline was due to rescue it at {when} and has not: is a leader running "
            "Powertools' runtime?"
        )
    else:
        rescue = f"the lifeline will rescue it at {when}"
    return f"executing on node {node} whose {who} stopped heartbeating at {stamp}; {rescue}"
