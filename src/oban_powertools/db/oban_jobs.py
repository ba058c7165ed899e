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
from .queries import Statements

Q = Statements(
    oban_jobs=(
        "job_snapshot job_snapshot_for_update job_drift_keys insert_job cancel_jobs notify"
        " large_set_work_mem retry_jobs_checked cancel_jobs_checked discard_jobs_checked"
    ),
)


def channel(prefix: str, name: str) -> str:
    """oban's channel naming: ``<prefix>.oban_<name>``."""
    return f"{prefix}.oban_{name}"


async def notify(conn: Conn, prefix: str, name: str, payload: Mapping[str, Any]) -> None:
    # oban's notifier accepts plain JSON as well as its compressed encoding.
    await conn.execute(Q.notify, {"channel": channel(prefix, name), "payload": json.dumps(payload)})


type JobRows = dict[int, dict[str, Any]]


async def snapshot_jobs(conn: Conn, ids: Sequence[int], *, lock: bool) -> JobRows:
    cur = await conn.execute(
        Q.job_snapshot_for_update if lock else Q.job_snapshot, {"ids": list(ids)}
    )
    return {row["id"]: row for row in await cur.fetchall()}


async def drift_keys(conn: Conn, ids: Sequence[int]) -> dict[int, tuple[str, int]]:
    """(state, attempt) of each job that exists; tuple rows, for 100k-job bulk previews."""
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(Q.job_drift_keys, {"ids": list(ids)})
    return {job_id: (state, attempt) for job_id, state, attempt in await cur.fetchall()}


type CheckedRow = tuple[int, str, int, str, str, str, int, int]
type Change = Literal["retry", "cancel", "discard"]

# The checked forms: only the jobs of a preview that are still as previewed change.
CHECKED: dict[str, LiteralString] = {
    "retry": Q.retry_jobs_checked,
    "cancel": Q.cancel_jobs_checked,
    "discard": Q.discard_jobs_checked,
}


# The preview's expectations are read with jsonb_each, whose rows PostgreSQL keeps in
# memory up to work_mem (4 MB by default) and spills to temporary files beyond: about
# 15,000 targets. Above that the statement gets more memory for the rest of its
# transaction, which cut the spill (and ~10% of a 100k-job confirm) here.
LARGE_SET = 10_000


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
        await conn.execute(Q.large_set_work_mem)
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
        Q.insert_job,
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
    cur = await conn.execute(Q.cancel_jobs, {"ids": list(ids)})
    rows = {r["id"]: r for r in await cur.fetchall()}
    for row in rows.values():
        if row["state"] == "executing":
            await notify(conn, prefix, "signal", {"action": "pkill", "job_id": row["id"]})
    return rows
