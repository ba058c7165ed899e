"""Jobs as the jobs page lists them: filters, a keyset page, and a bounded count.

Every value leaves through the display policy. Args search runs over the *displayed*
(redacted) args, so searching for a secret value cannot reveal which job holds it, and it
scans a bounded number of rows per page. One job in full is :mod:`.job_detail`; failing,
stuck and discarded work (what the overview asks about) is :mod:`.job_failures`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from ..actions import get_action
from ..db import Conn, Database
from ..db.queries import Statements
from ..display import Display, compact_json, error_line, job_redactions, merge_secrets
from ..errors import FilterError
from ..seams import Resource
from .common import (
    COUNT_CAP,
    EXACT_BELOW_FACTOR,
    JOB_STATES,
    Count,
    ListFilters,
    bounded_count,
    estimate_rows,
    utc,
)

__all__ = [
    "JOB_ACTIONS",
    "JobFilters",
    "JobList",
    "JobRow",
    "applicable_actions",
    "list_jobs",
    "shown_identity",
]

JOB_ACTIONS = ("retry_job", "cancel_job", "discard_job")
PAGE_SIZE = 50
SEARCH_BATCH = 200
SEARCH_SCAN = 2000  # rows one search page looks at before it stops and offers "continue"
ARGS_PREVIEW = 140
MAX_FILTER_LENGTH = 255

# An unset filter is NULL and matches everything; the statement text never changes.
Q = Statements(oban_jobs="list_jobs estimate_filtered_jobs count_jobs")


@dataclass(frozen=True, slots=True)
class JobFilters(ListFilters):
    state: str | None = None
    queue: str | None = None
    worker: str | None = None
    tag: str | None = None
    q: str | None = None  # substring of the displayed args

    def __post_init__(self) -> None:
        if self.state is not None and self.state not in JOB_STATES:
            raise FilterError(f"unknown job state {self.state[:40]!r}")
        for name in ("queue", "worker", "tag", "q"):
            value = getattr(self, name)
            if value is not None and len(value) > MAX_FILTER_LENGTH:
                raise FilterError(f"the {name} filter is longer than {MAX_FILTER_LENGTH}")

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> JobFilters:
        get = partial(cls.from_param, query)
        tag = get("tag")
        return cls(
            get("state"), get("queue"), get("worker"), tag.lower() if tag else None, get("q")
        )

    def params(self) -> dict[str, Any]:
        return {"state": self.state, "queue": self.queue, "worker": self.worker, "tag": self.tag}


@dataclass(frozen=True, slots=True)
class JobIdentity:
    """What every view of a job shows of it (see shown_identity)."""

    id: int
    state: str
    queue: str
    worker: str
    attempt: int
    max_attempts: int
    priority: int
    tags: list[str]


@dataclass(frozen=True, slots=True)
class JobRow(JobIdentity):
    args_preview: str
    last_error: str
    at: datetime | None
    at_label: str
    actions: list[str]  # job actions whose check passes for this state


@dataclass(frozen=True, slots=True)
class JobList:
    rows: list[JobRow]
    next_before: int | None
    count: Count | None  # None while an args search is active (not countable cheaply)
    scanned: int
    search_stopped: bool  # the args search hit its scan budget before filling the page


def applicable_actions(state: str) -> list[str]:
    """Job actions that apply to a job in ``state`` (the pipeline re-checks on preview)."""
    return [name for name in JOB_ACTIONS if get_action(name).check({"state": state}, {}) is None]


def _relevant_time(row: Mapping[str, Any]) -> tuple[datetime | None, str]:
    state = row["state"]
    pick = {
        "completed": ("completed_at", "completed"),
        "cancelled": ("cancelled_at", "cancelled"),
        "discarded": ("discarded_at", "discarded"),
        "executing": ("attempted_at", "started"),
        "scheduled": ("scheduled_at", "runs"),
        "retryable": ("scheduled_at", "retries"),
        "available": ("scheduled_at", "available since"),
    }.get(state, ("inserted_at", "inserted"))
    return utc(row[pick[0]]), pick[1]


def shown_identity(display: Display, row: Mapping[str, Any], resource: Resource) -> dict[str, Any]:
    """The job fields every view shows, each passed through the display policy here, once,
    so the list and the detail page cannot disagree about what is redacted."""
    return {
        "queue": display.text("queue", row["queue"], resource=resource, field="queue"),
        "worker": display.text("worker", row["worker"], resource=resource, field="worker"),
        "attempt": row["attempt"],
        "max_attempts": row["max_attempts"],
        "priority": row["priority"],
        "tags": [display.text("tag", t, resource=resource, field="tags") for t in row["tags"]],
    }


def _job_row(display: Display, row: Mapping[str, Any]) -> tuple[JobRow, str]:
    resource = Resource("job", str(row["id"]))
    meta_row = row.get("meta") or {}
    args = display.tree("args", row["args"], resource=resource, redact=job_redactions(meta_row))
    args_text = compact_json(args.value)
    meta = display.tree("meta", meta_row, resource=resource)
    known = merge_secrets(args.secrets, meta.secrets)
    last_error = ""
    if row["last_error"]:
        text = display.free_text(
            "error", row["last_error"], resource=resource, field="error", known=known
        )
        last_error = error_line(text)
    at, at_label = _relevant_time(row)
    preview = args_text if len(args_text) <= ARGS_PREVIEW else args_text[: ARGS_PREVIEW - 1] + "…"
    job = JobRow(
        id=row["id"],
        state=row["state"],
        **shown_identity(display, row, resource),
        args_preview=preview,
        last_error=last_error,
        at=at,
        at_label=at_label,
        actions=applicable_actions(row["state"]),
    )
    return job, args_text


async def list_jobs(
    db: Database,
    display: Display,
    filters: JobFilters,
    *,
    before: int | None = None,
    limit: int = PAGE_SIZE,
) -> JobList:
    """One page of jobs, newest first, with a bounded count of all matches."""
    limit = max(1, min(limit, 200))
    needle = filters.q.casefold() if filters.q else None
    rows: list[JobRow] = []
    scanned = 0
    cursor = before
    stopped = False
    more = False
    async with db.connection() as conn:
        while True:
            batch_size = SEARCH_BATCH if needle else limit + 1
            # Never prepared: a generic plan could not tell which filters are set.
            cur = await conn.execute(
                Q.list_jobs,
                filters.params() | {"before": cursor, "limit": batch_size},
                prepare=False,
            )
            batch = await cur.fetchall()
            for raw in batch:
                scanned += 1
                cursor = raw["id"]
                job, args_text = _job_row(display, raw)
                if needle is None or needle in args_text.casefold():
                    rows.append(job)
                if len(rows) > limit:
                    more = True
                    break
            if more or len(batch) < batch_size:
                break
            if needle is None:
                break
            if scanned >= SEARCH_SCAN:
                stopped = True
                break
        count: Count | None = None
        if needle is None:
            count = await _count(conn, filters)
    page = rows[:limit]
    if more:
        next_before: int | None = page[-1].id
    elif stopped:
        next_before = cursor
    else:
        next_before = None
    return JobList(page, next_before, count, scanned, stopped)


async def _count(conn: Conn, filters: JobFilters) -> Count:
    """The planner's estimate when it is large (nothing is read), else a capped exact count."""
    params = filters.params() | {"states": [filters.state] if filters.state else list(JOB_STATES)}
    estimate = await estimate_rows(conn, Q.estimate_filtered_jobs, params)
    if estimate > COUNT_CAP * EXACT_BELOW_FACTOR:
        return Count(estimate, "estimate")
    cur = await conn.execute(Q.count_jobs, params | {"cap": COUNT_CAP + 1}, prepare=False)
    row = await cur.fetchone()
    n = int(row["n"]) if row else 0
    return bounded_count(n, estimate, COUNT_CAP)
