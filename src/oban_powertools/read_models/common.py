"""What every read model shares: UTC times, bounded counts, next paths and their owners."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal, LiteralString

from ..db import Conn
from ..db.queries import Statements

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


# The host-owned next step wherever a worker's job failed (a job, a workflow step, a cron
# run, a failing worker on the overview): one wording on every page.
FIX_THE_WORKER = NextPath(
    "Fix the worker or its upstream dependency",
    HOST,
    note="Worker code and the systems it calls are host-owned.",
)


# Above this many rows (by the planner's estimate) a count is not worth taking exactly: the
# page shows the estimate, labelled as one, and reads no rows at all, so its cost does not
# grow with the table. Below it the count is exact up to the cap (``COUNT_CAP + 1`` index
# entries at most); the margin over the cap absorbs estimates that are somewhat off.
EXACT_BELOW_FACTOR = 4

# One statement for all states (see the query file): the estimate, and a capped exact count
# only where the estimate is small or missing.
Q = Statements(oban_jobs="state_counts")


def bounded_count(n: int | None, estimate: int | None, cap: int) -> Count:
    """Exact up to ``cap``; otherwise the planner's estimate or, lacking one, "cap+"."""
    if n is not None and n <= cap:
        return Count(n)
    if estimate is not None and estimate > cap:
        return Count(estimate, "estimate")
    return Count(cap, "at_least")


async def state_counts(
    conn: Conn,
    states: Sequence[str] = JOB_STATES,
    *,
    queue: str | None = None,
    cap: int = COUNT_CAP,
) -> dict[str, Count]:
    """Exact counts up to ``cap``; above it the planner's estimate, labelled as such."""
    cur = await conn.execute(
        Q.state_counts,
        {
            "states": list(states),
            "queue": queue,
            "cap": cap,
            "exact_below": cap * EXACT_BELOW_FACTOR,
        },
        # Never prepared: a generic plan could not know whether a queue is given.
        prepare=False,
    )
    counts = {
        row["state"]: bounded_count(row["n"], row["estimate"], cap) for row in await cur.fetchall()
    }
    return {state: counts[state] for state in states}


async def estimate_rows(conn: Conn, explain: LiteralString, params: Mapping[str, Any]) -> int:
    """The planner's row estimate from ``explain``, a named ``EXPLAIN (FORMAT JSON)``
    statement (nothing is read). The EXPLAIN is part of the named statement, not put in
    front of one here: Python never builds SQL text."""
    cur = await conn.execute(explain, params, prepare=False)
    row = await cur.fetchone()
    if row is None:
        return 0
    plan = next(iter(row.values()))
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


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


class ListFilters:
    """The filters of a list page, a frozen dataclass of optional strings whose fields are
    the page's query parameters of the same names (in link order)."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[dict[str, Any]]

    @staticmethod
    def from_param(query: Mapping[str, str], name: str) -> str | None:
        """One filter from the query string: stripped, None when empty."""
        value = (query.get(name) or "").strip()
        return value or None

    def query(self) -> dict[str, str]:
        """The filters set, as query parameters (for pagination links)."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name))}

    @property
    def active(self) -> bool:
        return bool(self.query())
