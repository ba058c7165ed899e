"""What every read model shares: UTC times, bounded counts, next paths and their owners."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, LiteralString

from ..db import Conn

# The ownership vocabulary of a next path (product contract, verbatim).
NATIVE: Final = "Powertools-native"
BRIDGE: Final = "Oban Web bridge"
HOST: Final = "host-owned follow-up"
type Ownership = Literal["Powertools-native", "Oban Web bridge", "host-owned follow-up"]

JOB_STATES = (
    "available",
    "scheduled",
    "executing",
    "retryable",
    "completed",
    "discarded",
    "cancelled",
    "suspended",
)

# Counting stops here: past it the page says "10,000+" (or the planner's estimate) instead
# of scanning a large table on every refresh.
COUNT_CAP = 10_000

# A producer row that oban's refresher has not touched for this long belongs to a node that
# is gone or stuck (the refresher runs every 15 s; the leader deletes rows after 60 s).
PRODUCER_LIVE_SECONDS = 90

# An executing job older than this is listed as stuck unless config.extra overrides it.
DEFAULT_STUCK_AFTER_SECONDS = 15 * 60


def utc(value: datetime | None) -> datetime | None:
    """oban's timestamps are naive UTC; ours are timestamptz. Pages get aware UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Count:
    """A job count that says how sure it is: exact, a lower bound, or the planner's estimate."""

    value: int
    kind: Literal["exact", "at_least", "estimate"] = "exact"

    def __str__(self) -> str:
        if self.kind == "at_least":
            return f"{self.value:,}+"
        if self.kind == "estimate":
            return f"~{self.value:,}"
        return f"{self.value:,}"

    @property
    def estimated(self) -> bool:
        return self.kind != "exact"

    @property
    def zero(self) -> bool:
        return self.kind == "exact" and self.value == 0


@dataclass(frozen=True, slots=True)
class NextPath:
    """Where an operator goes next, and who owns that venue."""

    label: str
    ownership: Ownership
    href: str | None = None  # relative to the mount; None for host-owned steps off-site
    note: str = ""


BOUNDED_STATE_COUNTS: LiteralString = """
SELECT s.state,
       (SELECT count(*) FROM (
            SELECT 1 FROM oban_jobs j
            WHERE j.state = s.state::oban_job_state
              AND (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)
            LIMIT %(cap)s) capped)::bigint AS n
FROM unnest(%(states)s::text[]) AS s(state)
"""

# oban's own estimate (EXPLAIN row count per state and queue), summed over known queues.
ESTIMATE_STATE: LiteralString = """
SELECT coalesce(sum(oban_count_estimate(%(state)s, q.queue)), 0)::bigint AS n
FROM (SELECT queue FROM oban_producers UNION SELECT queue FROM powertools_queue_states
      UNION SELECT %(queue)s::text WHERE %(queue)s::text IS NOT NULL) q
WHERE %(queue)s::text IS NULL OR q.queue = %(queue)s::text
"""


async def state_counts(
    conn: Conn,
    states: Sequence[str] = JOB_STATES,
    *,
    queue: str | None = None,
    cap: int = COUNT_CAP,
) -> dict[str, Count]:
    """Exact counts up to ``cap``; above it oban's planner estimate, labelled as such."""
    cur = await conn.execute(
        BOUNDED_STATE_COUNTS, {"states": list(states), "queue": queue, "cap": cap + 1}
    )
    counts: dict[str, Count] = {}
    for row in await cur.fetchall():
        n = int(row["n"])
        if n <= cap:
            counts[row["state"]] = Count(n)
            continue
        est = await conn.execute(ESTIMATE_STATE, {"state": row["state"], "queue": queue})
        estimate_row = await est.fetchone()
        estimate = int(estimate_row["n"]) if estimate_row else 0
        counts[row["state"]] = (
            Count(estimate, "estimate") if estimate > cap else Count(cap, "at_least")
        )
    return counts


def stuck_after_seconds(extra: Mapping[str, Any]) -> int:
    """The host may tune when an executing job counts as stuck (``extra["stuck_after_seconds"]``)."""
    value = extra.get("stuck_after_seconds")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return DEFAULT_STUCK_AFTER_SECONDS


def ago(then: datetime | None, now: datetime) -> str:
    """'3 minutes ago' / 'in 5 minutes': the wording diagnoses and tables share."""
    if then is None:
        return "never"
    seconds = int((now - then).total_seconds())
    if abs(seconds) < 45:
        return "just now"
    span = duration(abs(seconds))
    return f"{span} ago" if seconds > 0 else f"in {span}"


def duration(seconds: float) -> str:
    """A rough human duration: '47 seconds', '3 minutes', '2 hours', '5 days'."""
    s = int(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= size:
            n = round(s / size) if unit != "minute" else s // size
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return f"{s} second{'' if s == 1 else 's'}"
