"""Jobs as pages show them: filtered keyset lists, one job in detail, failing and stuck work.

Every value leaves through the display policy. Args search runs over the *displayed*
(redacted) args, so searching for a secret value cannot reveal which job holds it, and it
scans a bounded number of rows per page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString

from ..actions import get_action
from ..db import Conn, Database
from ..display import Display, compact_json, error_line, merge_secrets
from ..errors import FilterError
from ..seams import Resource
from .common import (
    COUNT_CAP,
    EXACT_BELOW_FACTOR,
    JOB_STATES,
    PRODUCER_LIVE_SECONDS,
    Count,
    bounded_count,
    estimate_rows,
    utc,
)

JOB_ACTIONS = ("retry_job", "cancel_job", "discard_job")
PAGE_SIZE = 50
SEARCH_BATCH = 200
SEARCH_SCAN = 2000  # rows one search page looks at before it stops and offers "continue"
ARGS_PREVIEW = 140
MAX_FILTER_LENGTH = 255

# An unset filter is NULL and matches everything; the statement text never changes.
LIST_JOBS: LiteralString = """
SELECT id, state::text AS state, queue, worker, attempt, max_attempts, priority, tags, args,
       meta, errors->-1->>'error' AS last_error, inserted_at, scheduled_at, attempted_at,
       completed_at, cancelled_at, discarded_at
FROM oban_jobs
WHERE (%(state)s::text IS NULL OR state = %(state)s::text::oban_job_state)
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(worker)s::text IS NULL OR worker = %(worker)s::text)
  AND (%(tag)s::text IS NULL OR tags @> ARRAY[%(tag)s::text])
  AND (%(before)s::bigint IS NULL OR id < %(before)s::bigint)
ORDER BY id DESC
LIMIT %(limit)s
"""

# The rows a filter matches. ``state = ANY(states)`` lists every state when none is chosen:
# it changes no result, but lets a queue-only filter use oban's (state, queue, ...) index.
FILTERED_JOBS: LiteralString = """
SELECT 1 FROM oban_jobs
WHERE state = ANY(%(states)s::oban_job_state[])
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(worker)s::text IS NULL OR worker = %(worker)s::text)
  AND (%(tag)s::text IS NULL OR tags @> ARRAY[%(tag)s::text])
"""

COUNT_JOBS: LiteralString = (
    "SELECT count(*)::bigint AS n FROM ("  # noqa: S608 (LiteralString constants only)
    + FILTERED_JOBS
    + " LIMIT %(cap)s) capped"
)

GET_JOB: LiteralString = """
SELECT id, state::text AS state, queue, worker, attempt, max_attempts, priority, tags, args,
       meta, errors, attempted_by, inserted_at, scheduled_at, attempted_at, completed_at,
       cancelled_at, discarded_at,
       timezone('UTC', now()) AS db_now,
       EXISTS (SELECT 1 FROM oban_producers p
               WHERE p.updated_at > timezone('UTC', now())
                                    - make_interval(secs => %(live)s)
                 AND CASE WHEN cardinality(attempted_by) >= 2
                          THEN p.uuid::text = attempted_by[2]
                          ELSE p.node = attempted_by[1] AND p.queue = oban_jobs.queue END
       ) AS producer_live
FROM oban_jobs WHERE id = %(id)s
"""

# Failures worth an operator's look: the latest retryable jobs (they are failing now) and
# jobs discarded within the window, each side read newest first through its own index
# (Powertools' (state, attempted_at) index of migration 0002; oban's discarded_at index)
# and capped, so the cost does not depend on how many have piled up.
FAILING_WORKERS: LiteralString = """
WITH recent AS (
    (SELECT id, worker, queue, state::text AS state, attempted_at, discarded_at
     FROM oban_jobs WHERE state = 'retryable'
     ORDER BY attempted_at DESC NULLS LAST LIMIT %(sample)s)
    UNION ALL
    (SELECT id, worker, queue, state::text AS state, attempted_at, discarded_at
     FROM oban_jobs
     WHERE state = 'discarded'
       AND discarded_at > timezone('UTC', now()) - make_interval(secs => %(window)s)
     ORDER BY discarded_at DESC LIMIT %(sample)s)
)
SELECT worker,
       count(*)::int AS failures,
       count(*) FILTER (WHERE state = 'retryable')::int AS retryable,
       count(*) FILTER (WHERE state = 'discarded')::int AS discarded,
       max(coalesce(discarded_at, attempted_at)) AS last_failed_at,
       (array_agg(id ORDER BY coalesce(discarded_at, attempted_at) DESC NULLS LAST, id DESC))[1]
           AS last_job_id,
       (array_agg(DISTINCT queue))[1:5] AS queues
FROM recent
GROUP BY worker
ORDER BY last_failed_at DESC NULLS LAST
LIMIT %(limit)s
"""

LAST_ERRORS: LiteralString = """
SELECT id, args, meta, errors->-1->>'error' AS last_error FROM oban_jobs WHERE id = ANY(%(ids)s)
"""

# The oldest executing jobs (Powertools' (state, attempted_at) index), each checked against
# the live producers, which are read once (a handful of rows) rather than once per job. At
# most ``scan`` executing jobs are looked at.
STUCK_JOBS: LiteralString = """
WITH live AS (
    SELECT coalesce(array_agg(uuid::text), '{}') AS uuids,
           coalesce(array_agg(node || chr(31) || queue), '{}') AS node_queues
    FROM oban_producers
    WHERE updated_at > timezone('UTC', now()) - make_interval(secs => %(live)s)
)
SELECT * FROM (
    SELECT j.id, j.queue, j.worker, j.attempt, j.max_attempts, j.attempted_at, j.attempted_by,
           extract(epoch FROM timezone('UTC', now()) - j.attempted_at)::bigint
               AS running_seconds,
           CASE WHEN cardinality(j.attempted_by) >= 2
                THEN j.attempted_by[2] = ANY(live.uuids)
                ELSE coalesce(j.attempted_by[1] || chr(31) || j.queue = ANY(live.node_queues),
                              false) END AS producer_live
    FROM oban_jobs j, live
    WHERE j.state = 'executing'
    ORDER BY j.attempted_at ASC NULLS FIRST
    LIMIT %(scan)s
) executing
WHERE running_seconds > %(stuck_after)s OR NOT producer_live
   OR running_seconds IS NULL
-- The scan's own order (oldest attempt first is longest running first), so the planner
-- stops at the first ``limit`` matches instead of reading the whole scan.
ORDER BY attempted_at ASC NULLS FIRST
LIMIT %(limit)s
"""

# Newest first through oban's discarded_at index (read backwards, which is the order of
# ``DESC``; ``NULLS LAST`` would force a sort of every discarded job).
RECENT_DISCARDED: LiteralString = """
SELECT id, queue, worker, attempt, max_attempts, discarded_at, args, meta,
       errors->-1->>'error' AS last_error
FROM oban_jobs WHERE state = 'discarded' AND discarded_at IS NOT NULL
ORDER BY discarded_at DESC LIMIT %(limit)s
"""


@dataclass(frozen=True, slots=True)
class JobFilters:
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
        def get(name: str) -> str | None:
            value = (query.get(name) or "").strip()
            return value or None

        tag = get("tag")
        return cls(
            get("state"), get("queue"), get("worker"), tag.lower() if tag else None, get("q")
        )

    def params(self) -> dict[str, Any]:
        return {"state": self.state, "queue": self.queue, "worker": self.worker, "tag": self.tag}

    def query(self) -> dict[str, str]:
        """The filters as query parameters (for pagination links)."""
        pairs = {
            "state": self.state,
            "queue": self.queue,
            "worker": self.worker,
            "tag": self.tag,
            "q": self.q,
        }
        return {k: v for k, v in pairs.items() if v}

    @property
    def active(self) -> bool:
        return bool(self.query())


@dataclass(frozen=True, slots=True)
class JobRow:
    id: int
    state: str
    queue: str
    worker: str
    attempt: int
    max_attempts: int
    priority: int
    tags: list[str]
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


@dataclass(frozen=True, slots=True)
class JobError:
    attempt: int | None
    at: datetime | None
    line: str
    text: str


@dataclass(frozen=True, slots=True)
class JobDetail:
    id: int
    state: str
    queue: str
    worker: str
    attempt: int
    max_attempts: int
    priority: int
    tags: list[str]
    args_json: str
    meta_json: str
    errors: list[JobError]
    nodes: list[str]
    inserted_at: datetime | None
    scheduled_at: datetime | None
    attempted_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    discarded_at: datetime | None
    producer_live: bool
    cron_name: str | None
    actions: list[str]


@dataclass(frozen=True, slots=True)
class FailingWorker:
    worker: str
    queues: list[str]
    failures: int
    retryable: int
    discarded: int
    last_failed_at: datetime | None
    last_job_id: int
    last_error: str
    sampled: bool  # the failure scan hit its cap; counts are lower bounds


@dataclass(frozen=True, slots=True)
class StuckJob:
    id: int
    queue: str
    worker: str
    attempt: int
    max_attempts: int
    attempted_at: datetime | None
    running_seconds: int | None
    node: str
    producer_live: bool

    @property
    def orphaned(self) -> bool:
        return not self.producer_live


@dataclass(frozen=True, slots=True)
class DiscardedJob:
    id: int
    queue: str
    worker: str
    attempt: int
    max_attempts: int
    discarded_at: datetime | None
    last_error: str


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


def _record_secrets(display: Display, resource: Resource, row: Mapping[str, Any]) -> dict[str, str]:
    """Values the policy hides in a job's args and meta, to mask wherever they reappear."""
    return merge_secrets(
        display.tree("args", row["args"], resource=resource).secrets,
        display.tree("meta", row.get("meta") or {}, resource=resource).secrets,
    )


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
    args = display.tree("args", row["args"], resource=resource)
    args_text = compact_json(args.value)
    meta = display.tree("meta", row.get("meta") or {}, resource=resource)
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
                LIST_JOBS,
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
    estimate = await estimate_rows(conn, FILTERED_JOBS, params)
    if estimate > COUNT_CAP * EXACT_BELOW_FACTOR:
        return Count(estimate, "estimate")
    cur = await conn.execute(COUNT_JOBS, params | {"cap": COUNT_CAP + 1}, prepare=False)
    row = await cur.fetchone()
    n = int(row["n"]) if row else 0
    return bounded_count(n, estimate, COUNT_CAP)


async def job_detail(db: Database, display: Display, job_id: int) -> JobDetail | None:
    async with db.connection() as conn:
        cur = await conn.execute(GET_JOB, {"id": job_id, "live": PRODUCER_LIVE_SECONDS})
        row = await cur.fetchone()
    if row is None:
        return None
    return detail_from_row(display, row)


def detail_from_row(display: Display, row: Mapping[str, Any]) -> JobDetail:
    resource = Resource("job", str(row["id"]))
    args_json, args_secrets = display.json("args", row["args"], resource=resource)
    meta_json, meta_secrets = display.json("meta", row["meta"], resource=resource)
    known = merge_secrets(args_secrets, meta_secrets)
    errors: list[JobError] = []
    for entry in row["errors"] or []:
        if not isinstance(entry, Mapping):
            entry = {"error": entry}
        text = display.free_text(
            "error", entry.get("error"), resource=resource, field="error", known=known
        )
        errors.append(
            JobError(
                attempt=entry.get("attempt") if isinstance(entry.get("attempt"), int) else None,
                at=_parse_time(entry.get("at")),
                line=error_line(text),
                text=text,
            )
        )
    meta = row["meta"] or {}
    cron_name = meta.get("cron_name") if isinstance(meta.get("cron_name"), str) else None
    return JobDetail(
        id=row["id"],
        state=row["state"],
        **shown_identity(display, row, resource),
        args_json=args_json,
        meta_json=meta_json,
        errors=errors,
        nodes=[
            display.text("node", n, resource=resource, field="attempted_by")
            for n in (row["attempted_by"] or [])[:1]
        ],
        inserted_at=utc(row["inserted_at"]),
        scheduled_at=utc(row["scheduled_at"]),
        attempted_at=utc(row["attempted_at"]),
        completed_at=utc(row["completed_at"]),
        cancelled_at=utc(row["cancelled_at"]),
        discarded_at=utc(row["discarded_at"]),
        producer_live=bool(row["producer_live"]),
        cron_name=display.optional("cron_entry", cron_name, resource=resource, field="cron_name"),
        actions=applicable_actions(row["state"]),
    )


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return utc(datetime.fromisoformat(value))
    except ValueError:
        return None


async def failing_workers(
    conn: Conn,
    display: Display,
    *,
    window_seconds: int = 24 * 3600,
    sample: int = 1000,
    limit: int = 20,
) -> list[FailingWorker]:
    cur = await conn.execute(
        FAILING_WORKERS, {"window": window_seconds, "sample": sample, "limit": limit}
    )
    groups = await cur.fetchall()
    if not groups:
        return []
    cur = await conn.execute(LAST_ERRORS, {"ids": [g["last_job_id"] for g in groups]})
    last = {r["id"]: r for r in await cur.fetchall()}
    sampled = sum(g["failures"] for g in groups) >= sample
    found = []
    for g in groups:
        job = last.get(g["last_job_id"])
        line = ""
        if job is not None and job["last_error"]:
            resource = Resource("job", str(job["id"]))
            known = _record_secrets(display, resource, job)
            text = display.free_text(
                "error", job["last_error"], resource=resource, field="error", known=known
            )
            line = error_line(text)
        found.append(
            FailingWorker(
                worker=display.text("worker", g["worker"], field="worker"),
                queues=[display.text("queue", q, field="queue") for q in g["queues"] or []],
                failures=g["failures"],
                retryable=g["retryable"],
                discarded=g["discarded"],
                last_failed_at=utc(g["last_failed_at"]),
                last_job_id=g["last_job_id"],
                last_error=line,
                sampled=sampled,
            )
        )
    return found


async def stuck_jobs(
    conn: Conn,
    display: Display,
    *,
    stuck_after: int,
    limit: int = 50,
    scan: int = 5000,
) -> list[StuckJob]:
    cur = await conn.execute(
        STUCK_JOBS,
        {
            "live": PRODUCER_LIVE_SECONDS,
            "stuck_after": stuck_after,
            "limit": limit,
            "scan": scan,
        },
    )
    found = []
    for r in await cur.fetchall():
        resource = Resource("job", str(r["id"]))
        nodes: Sequence[str] = r["attempted_by"] or []
        found.append(
            StuckJob(
                id=r["id"],
                queue=display.text("queue", r["queue"], resource=resource, field="queue"),
                worker=display.text("worker", r["worker"], resource=resource, field="worker"),
                attempt=r["attempt"],
                max_attempts=r["max_attempts"],
                attempted_at=utc(r["attempted_at"]),
                running_seconds=r["running_seconds"],
                node=display.text("node", nodes[0], resource=resource, field="attempted_by")
                if nodes
                else "unknown node",
                producer_live=bool(r["producer_live"]),
            )
        )
    return found


async def recent_discarded(conn: Conn, display: Display, *, limit: int = 5) -> list[DiscardedJob]:
    cur = await conn.execute(RECENT_DISCARDED, {"limit": limit})
    found = []
    for r in await cur.fetchall():
        resource = Resource("job", str(r["id"]))
        known = _record_secrets(display, resource, r)
        line = ""
        if r["last_error"]:
            line = error_line(
                display.free_text(
                    "error", r["last_error"], resource=resource, field="error", known=known
                )
            )
        found.append(
            DiscardedJob(
                id=r["id"],
                queue=display.text("queue", r["queue"], resource=resource, field="queue"),
                worker=display.text("worker", r["worker"], resource=resource, field="worker"),
                attempt=r["attempt"],
                max_attempts=r["max_attempts"],
                discarded_at=utc(r["discarded_at"]),
                last_error=line,
            )
        )
    return found
