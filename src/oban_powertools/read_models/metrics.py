"""What the Prometheus exporter reports from the database: one bounded snapshot per scrape.

Every number comes from statements the pages use already, or from a time-bounded range of
an index, so a scrape costs about the same at 10M jobs as at 10:

* jobs by queue and state: the queues page's statement (oban's planner estimate, exact
  only below ``EXACT_COUNT_CAP``) over at most ``MAX_QUEUES`` queues and the four states an operator
  acts on (terminal states are pruned and say nothing about health);
* limiters: each limited queue's limits and use, as the next fetch sees them;
* cron: entries active and paused, how far behind the scheduler is, and the slots of the
  last ``window`` by outcome (skipped and failed ones are the missed runs) with the latest
  live decisions' lag, read per entry through the ``(entry_name, slot_at)`` index;
* actions: audit events of the last ``window`` by action name and outcome;
* lifeline: orphaned and stuck executing jobs per queue, the lifeline page's one bounded
  read (executing jobs only, at most ``lifeline.SCAN`` of them).

Nothing here knows Prometheus: :mod:`oban_powertools.web.metrics` turns a
:class:`MetricsSnapshot` into metric families. Labels are queue, state, action and
outcome only (never ids or args), and every list is capped, so the exporter's
cardinality is bounded whatever the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..db import Conn, Database
from ..db.queries import Statements
from ..limits.usage import limit_use
from . import queues as queues_model
from .lifeline import LifelineCounts, lifeline_counts

__all__ = [
    "DEFAULT_WINDOW",
    "EXACT_COUNT_CAP",
    "MAX_ACTIONS",
    "MAX_CRON_ENTRIES",
    "MAX_QUEUES",
    "CronMetrics",
    "LifelineCounts",
    "LimiterMetrics",
    "MetricsSnapshot",
    "metrics_snapshot",
]

# Queues exported (by name); the rest are counted in queues_omitted. Each costs four
# planner estimates (about 0.2 ms each), which is what bounds a scrape.
MAX_QUEUES = 30
# Exact below this (at most EXACT_COUNT_CAP + 1 index entries per queue and state), the
# planner's estimate above: a scrape reads no more rows at 10M jobs than at 10.
EXACT_COUNT_CAP = 100
MAX_CRON_ENTRIES = 1000  # entries whose recent slots are read
CRON_SLOTS_PER_ENTRY = 120  # an every-minute entry's last two hours
MAX_ACTIONS = 200  # (action, outcome) pairs exported
DEFAULT_WINDOW = 3600  # seconds: the "recent" of recent slots and actions
JOB_STATES = queues_model.QUEUE_STATES

Q = Statements(
    queue_states="queue_names",
    metrics="cron_state cron_recent_slots recent_actions",
)


@dataclass(frozen=True, slots=True)
class LimiterMetrics:
    queue: str
    global_limit: int | None
    running: int
    rate_allowed: int | None
    rate_period: int | None
    started: int
    saturated: bool


@dataclass(frozen=True, slots=True)
class CronMetrics:
    active: int
    paused: int
    scheduler_lag: float | None  # seconds the last evaluated minute is behind; None: never
    slots: dict[str, int]  # recent slots by outcome
    max_decision_lag: float | None  # seconds, the latest live slots' worst


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    jobs: dict[str, dict[str, int]]  # queue -> state -> count (estimate where large)
    queues_omitted: int  # queues beyond MAX_QUEUES
    limiters: list[LimiterMetrics]
    cron: CronMetrics
    actions: dict[tuple[str, str], int]  # (action, outcome) -> audit events in the window
    window: int
    taken_at: datetime
    lifeline: LifelineCounts


async def _jobs(conn: Conn) -> tuple[dict[str, dict[str, int]], int]:
    cur = await conn.execute(Q.queue_names, {"queue": None, "limit": MAX_QUEUES + 1})
    names = [row["queue"] for row in await cur.fetchall()]
    shown, omitted = names[:MAX_QUEUES], max(0, len(names) - MAX_QUEUES)
    counts = await queues_model.queue_counts(conn, shown, cap=EXACT_COUNT_CAP)
    jobs = {
        queue: {state: by_state[state].value for state in JOB_STATES if state in by_state}
        for queue, by_state in counts.items()
    }
    return jobs, omitted


async def _limiters(conn: Conn) -> list[LimiterMetrics]:
    found = []
    for queue, use in sorted((await limit_use(conn)).items())[:MAX_QUEUES]:
        limits = use.stored.limits
        g, r = limits.global_limit, limits.rate_limit
        found.append(
            LimiterMetrics(
                queue=queue,
                global_limit=g.allowed if g else None,
                running=use.running,
                rate_allowed=r.allowed if r else None,
                rate_period=r.period if r else None,
                started=use.started,
                saturated=use.saturated,
            )
        )
    return found


async def _cron(conn: Conn, window: int) -> tuple[CronMetrics, datetime]:
    cur = await conn.execute(Q.cron_state)
    state = await cur.fetchone()
    assert state is not None
    now: datetime = state["now"]
    last = state["last_covered"]
    # The minute after the last evaluated one is due once it has begun; lag is how long ago.
    lag = None if last is None else max(0.0, (now - last).total_seconds() - 60.0)
    cur = await conn.execute(
        Q.cron_recent_slots,
        {"entries": MAX_CRON_ENTRIES, "window": window, "per_entry": CRON_SLOTS_PER_ENTRY},
    )
    slots: dict[str, int] = {}
    worst: float | None = None
    for row in await cur.fetchall():
        slots[row["outcome"]] = int(row["n"])
        if row["max_lag"] is not None:
            worst = max(worst or 0.0, float(row["max_lag"]))
    cron = CronMetrics(int(state["active"]), int(state["paused"]), lag, slots, worst)
    return cron, now


async def _actions(conn: Conn, window: int) -> dict[tuple[str, str], int]:
    cur = await conn.execute(Q.recent_actions, {"window": window, "limit": MAX_ACTIONS})
    return {(row["action"], row["outcome"]): int(row["n"]) for row in await cur.fetchall()}


async def metrics_snapshot(
    db: Database,
    *,
    lifeline_grace: float,
    stuck_after: int,
    window: int = DEFAULT_WINDOW,
) -> MetricsSnapshot:
    """Read everything the exporter reports, on one connection. ``lifeline_grace`` and
    ``stuck_after`` are the host's ``Config`` values, so the gauges agree with the pages."""
    async with db.connection() as conn:
        jobs, omitted = await _jobs(conn)
        limiters = await _limiters(conn)
        cron, now = await _cron(conn, window)
        actions = await _actions(conn, window)
        lifeline = await lifeline_counts(conn, grace=lifeline_grace, stuck_after=stuck_after)
    return MetricsSnapshot(
        jobs=jobs,
        queues_omitted=omitted,
        limiters=limiters,
        cron=cron,
        actions=actions,
        window=window,
        taken_at=now,
        lifeline=lifeline,
    )
