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
from typing import Any, Literal, LiteralString

from psycopg.rows import tuple_row
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

# A bulk preview keeps only what drift is checked on (and the state, for the effect and
# the audit summary): 100k full snapshots would be most of a bulk action's cost.
JOB_DRIFT_KEYS: LiteralString = """
SELECT id, state::text AS state, attempt FROM oban_jobs WHERE id = ANY(%(ids)s) ORDER BY id
"""

INSERT_JOB: LiteralString = """
INSERT INTO oban_jobs (args, meta, queue, worker, priority, max_attempts, tags, state,
                       scheduled_at)
VALUES (%(args)s, %(meta)s, %(queue)s, %(worker)s, %(priority)s, %(max_attempts)s,
        %(tags)s, 'available', timezone('UTC', now()))
RETURNING id
"""

# Each change is a SET clause and the states it applies to; the plain statements (by id)
# and the checked ones (by id, only while state and attempt still match a preview) are
# built from the same parts, so both keep oban's semantics.

# Same as oban's retry_many_jobs.sql.
RETRY_SET: LiteralString = """
SET state = 'available'::oban_job_state,
    max_attempts = GREATEST(max_attempts, attempt + 1),
    scheduled_at = timezone('UTC', now()),
    completed_at = NULL,
    cancelled_at = NULL,
    discarded_at = NULL,
    meta = jsonb_set(meta, '{uniq_bmp}', '[]'::jsonb)
"""
RETRY_WHERE: LiteralString = " AND state NOT IN ('available', 'executing')"

# Same as oban's cancel_many_jobs.sql: executing jobs keep their state and are told to
# stop through the producer's pkill signal.
CANCEL_SET: LiteralString = """
SET state = CASE WHEN state = 'executing' THEN state ELSE 'cancelled'::oban_job_state END,
    cancelled_at = CASE WHEN state = 'executing' THEN cancelled_at
                        ELSE timezone('UTC', now()) END,
    meta = CASE WHEN state = 'executing' THEN meta
                ELSE meta || jsonb_build_object('cancel_attempted_at', timezone('UTC', now()))
           END
"""
CANCEL_WHERE: LiteralString = (
    " AND state IN ('executing', 'available', 'scheduled', 'retryable', 'suspended')"
)

# Discard: stop retrying a job that has not finished, keeping it for forensics.
DISCARD_SET: LiteralString = """
SET state = 'discarded'::oban_job_state,
    discarded_at = timezone('UTC', now()),
    meta = meta || jsonb_build_object('discarded_by_operator', true)
"""
DISCARD_WHERE: LiteralString = " AND state IN ('available', 'scheduled', 'retryable', 'suspended')"

RETURNING: LiteralString = (
    "\nRETURNING id, state::text AS state, queue, worker, attempt, max_attempts"
)

CANCEL_JOBS: LiteralString = (
    "UPDATE oban_jobs" + CANCEL_SET + "WHERE id = ANY(%(ids)s)" + CANCEL_WHERE + RETURNING
)

# The checked form: the expected state and attempt of each job come from the preview row
# (locked by the pipeline in the same transaction), so 100k expectations never travel to
# Python and back. A job changed since the preview no longer matches and is not updated;
# the caller treats every target missing from RETURNING as drifted. Concurrent writers are
# handled by PostgreSQL: an UPDATE that waits for a row lock re-checks the row's new version.
CHECKED_FROM: LiteralString = """
FROM (SELECT b.key::bigint AS expected_id, b.value->>'state' AS expected_state,
             (b.value->>'attempt')::int AS expected_attempt
      FROM powertools_previews p, jsonb_each(p.before) AS b
      WHERE p.token = %(token)s) expected
WHERE id = expected.expected_id AND state = expected.expected_state::oban_job_state
  AND attempt = expected.expected_attempt
"""
CHECKED_RETURNING: LiteralString = (
    "\nRETURNING id, expected_state, expected_attempt, state::text AS state, queue, worker,"
    " attempt, max_attempts"
)

RETRY_JOBS_CHECKED: LiteralString = (
    "UPDATE oban_jobs" + RETRY_SET + CHECKED_FROM + RETRY_WHERE + CHECKED_RETURNING
)
CANCEL_JOBS_CHECKED: LiteralString = (
    "UPDATE oban_jobs" + CANCEL_SET + CHECKED_FROM + CANCEL_WHERE + CHECKED_RETURNING
)
DISCARD_JOBS_CHECKED: LiteralString = (
    "UPDATE oban_jobs" + DISCARD_SET + CHECKED_FROM + DISCARD_WHERE + CHECKED_RETURNING
)

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


async def drift_keys(conn: Conn, ids: Sequence[int]) -> dict[int, tuple[str, int]]:
    """(state, attempt) of each job that exists; tuple rows, for 100k-job bulk previews."""
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(JOB_DRIFT_KEYS, {"ids": list(ids)})
    return {job_id: (state, attempt) for job_id, state, attempt in await cur.fetchall()}


type CheckedRow = tuple[int, str, int, str, str, str, int, int]
type Change = Literal["retry", "cancel", "discard"]

CHECKED: dict[str, LiteralString] = {
    "retry": RETRY_JOBS_CHECKED,
    "cancel": CANCEL_JOBS_CHECKED,
    "discard": DISCARD_JOBS_CHECKED,
}


# The preview's expectations are read with jsonb_each, whose rows PostgreSQL keeps in
# memory up to work_mem (4 MB by default) and spills to temporary files beyond: about
# 15,000 targets. Above that the statement gets more memory for the rest of its
# transaction, which cut the spill (and ~10% of a 100k-job confirm) here.
LARGE_SET = 10_000
LARGE_SET_WORK_MEM: LiteralString = "SET LOCAL work_mem = '64MB'"


async def change_checked(
    conn: Conn, prefix: str, change: Change, token: str, *, size: int = 1
) -> list[CheckedRow]:
    """Retry, cancel or discard the ``size`` jobs of a preview that still match it.

    Returns (id, expected state, expected attempt, then the after-state: state, queue,
    worker, attempt, max_attempts) per changed job, and sends oban's notifications for
    what changed, as the plain functions do (delivered on commit). Runs in the caller's
    transaction.
    """
    if size > LARGE_SET:
        await conn.execute(LARGE_SET_WORK_MEM)
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(CHECKED[change], {"token": token})
    rows: list[CheckedRow] = await cur.fetchall()
    if change == "retry":
        for queue in sorted({r[4] for r in rows}):
            await notify(conn, prefix, "insert", {"queue": queue})
    elif change == "cancel":
        for r in rows:
            if r[3] == "executing":
                await notify(conn, prefix, "signal", {"action": "pkill", "job_id": r[0]})
    return rows


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


async def cancel_jobs(conn: Conn, prefix: str, ids: Sequence[int]) -> JobRows:
    cur = await conn.execute(CANCEL_JOBS, {"ids": list(ids)})
    rows = {r["id"]: r for r in await cur.fetchall()}
    for row in rows.values():
        if row["state"] == "executing":
            await notify(conn, prefix, "signal", {"action": "pkill", "job_id": row["id"]})
    return rows
