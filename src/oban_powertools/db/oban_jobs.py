"""The library's SQL over oban-py's ``oban_jobs`` table.

The control plane mutates jobs inside its own transactions (so the change and its audit
event commit together), which oban's ``Oban.retry_many_jobs`` & co. cannot do: they take
their own connection. These statements keep oban's semantics (a contract test runs both
on the same rows and compares), and notify oban's channels the way oban does. NOTIFY is
transactional, so nodes hear about a change only once it has committed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, LiteralString

from psycopg.types.json import Jsonb

from . import Conn

# What an action snapshots of a job: enough to detect drift and to say what changed.
# Kept small on purpose: a bulk action snapshots up to 100k of these.
JOB_SNAPSHOT: LiteralString = """
SELECT id, state::text AS state, queue, worker, attempt, max_attempts
FROM oban_jobs WHERE id = ANY(%(ids)s)
ORDER BY id
"""

JOB_SNAPSHOT_FOR_UPDATE: LiteralString = JOB_SNAPSHOT + " FOR UPDATE"

INSERT_JOB: LiteralString = """
INSERT INTO oban_jobs (args, meta, queue, worker, priority, max_attempts, tags, state,
                       scheduled_at)
VALUES (%(args)s, %(meta)s, %(queue)s, %(worker)s, %(priority)s, %(max_attempts)s,
        %(tags)s, 'available', timezone('UTC', now()))
RETURNING id
"""

# Same as oban's retry_many_jobs.sql.
RETRY_JOBS: LiteralString = """
UPDATE oban_jobs
SET state = 'available'::oban_job_state,
    max_attempts = GREATEST(max_attempts, attempt + 1),
    scheduled_at = timezone('UTC', now()),
    completed_at = NULL,
    cancelled_at = NULL,
    discarded_at = NULL,
    meta = jsonb_set(meta, '{uniq_bmp}', '[]'::jsonb)
WHERE id = ANY(%(ids)s) AND state NOT IN ('available', 'executing')
RETURNING id, state::text AS state, queue, worker, attempt, max_attempts
"""

# Same as oban's cancel_many_jobs.sql: executing jobs keep their state and are told to
# stop through the producer's pkill signal.
CANCEL_JOBS: LiteralString = """
UPDATE oban_jobs
SET state = CASE WHEN state = 'executing' THEN state ELSE 'cancelled'::oban_job_state END,
    cancelled_at = CASE WHEN state = 'executing' THEN cancelled_at
                        ELSE timezone('UTC', now()) END,
    meta = CASE WHEN state = 'executing' THEN meta
                ELSE meta || jsonb_build_object('cancel_attempted_at', timezone('UTC', now()))
           END
WHERE id = ANY(%(ids)s)
  AND state IN ('executing', 'available', 'scheduled', 'retryable', 'suspended')
RETURNING id, state::text AS state, queue, worker, attempt, max_attempts
"""

# Discard: stop retrying a job that has not finished, keeping it for forensics.
DISCARD_JOBS: LiteralString = """
UPDATE oban_jobs
SET state = 'discarded'::oban_job_state,
    discarded_at = timezone('UTC', now()),
    meta = meta || jsonb_build_object('discarded_by_operator', true)
WHERE id = ANY(%(ids)s) AND state IN ('available', 'scheduled', 'retryable', 'suspended')
RETURNING id, state::text AS state, queue, worker, attempt, max_attempts
"""

NOTIFY: LiteralString = "SELECT pg_notify(%(channel)s, %(payload)s)"


def channel(prefix: str, name: str) -> str:
    """oban's channel naming: ``<prefix>.oban_<name>``."""
    return f"{prefix}.oban_{name}"


async def notify(conn: Conn, prefix: str, name: str, payload: Mapping[str, Any]) -> None:
    # oban's notifier accepts plain JSON as well as its compressed encoding.
    await conn.execute(NOTIFY, {"channel": channel(prefix, name), "payload": json.dumps(payload)})


type JobRows = dict[int, dict[str, Any]]


async def snapshot_jobs(conn: Conn, ids: Sequence[int], *, lock: bool) -> JobRows:
    cur = await conn.execute(JOB_SNAPSHOT_FOR_UPDATE if lock else JOB_SNAPSHOT, {"ids": list(ids)})
    return {row["id"]: row for row in await cur.fetchall()}


async def insert_job(
    conn: Conn,
    prefix: str,
    *,
    worker: str,
    queue: str,
    args: Mapping[str, Any],
    meta: Mapping[str, Any],
    priority: int = 0,
    max_attempts: int = 20,
    tags: Sequence[str] = (),
) -> int:
    cur = await conn.execute(
        INSERT_JOB,
        {
            "args": Jsonb(dict(args)),
            "meta": Jsonb(dict(meta)),
            "queue": queue,
            "worker": worker,
            "priority": priority,
            "max_attempts": max_attempts,
            "tags": sorted({t.lower() for t in tags}),
        },
    )
    row = await cur.fetchone()
    assert row is not None
    await notify(conn, prefix, "insert", {"queue": queue})
    return int(row["id"])


async def retry_jobs(conn: Conn, prefix: str, ids: Sequence[int]) -> JobRows:
    """Retry; returns the changed jobs' after-state (what RETURNING saw, no re-read)."""
    cur = await conn.execute(RETRY_JOBS, {"ids": list(ids)})
    rows = {r["id"]: r for r in await cur.fetchall()}
    for queue in sorted({r["queue"] for r in rows.values()}):
        await notify(conn, prefix, "insert", {"queue": queue})
    return rows


async def cancel_jobs(conn: Conn, prefix: str, ids: Sequence[int]) -> JobRows:
    cur = await conn.execute(CANCEL_JOBS, {"ids": list(ids)})
    rows = {r["id"]: r for r in await cur.fetchall()}
    for row in rows.values():
        if row["state"] == "executing":
            await notify(conn, prefix, "signal", {"action": "pkill", "job_id": row["id"]})
    return rows


async def discard_jobs(conn: Conn, ids: Sequence[int]) -> JobRows:
    cur = await conn.execute(DISCARD_JOBS, {"ids": list(ids)})
    return {r["id"]: r for r in await cur.fetchall()}
