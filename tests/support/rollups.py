"""Jobs written straight into oban_jobs with chosen timestamps, for the job rollup's tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

MINUTE = timedelta(minutes=1)


def floor_minute(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(second=0, microsecond=0)


def naive(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


def failure(attempt: int, at: datetime) -> dict[str, Any]:
    """An entry of ``errors`` as oban's executor writes it."""
    return {"attempt": attempt, "at": at.astimezone(UTC).isoformat(), "error": "boom"}


async def put_job(
    conn: Any,
    state: str,
    *,
    queue: str = "default",
    scheduled: datetime | None = None,
    attempted: datetime | None = None,
    ended: datetime | None = None,
    attempt: int = 1,
    errors: list[dict[str, Any]] | None = None,
) -> int:
    """One job in ``state``; ``ended`` is its completed_at, discarded_at or cancelled_at."""
    ends = {
        s: naive(ended) if state == s else None for s in ("completed", "discarded", "cancelled")
    }
    cur = await conn.execute(
        """
        INSERT INTO oban_jobs (state, queue, worker, args, errors, attempt, max_attempts,
                               scheduled_at, attempted_at, completed_at, discarded_at,
                               cancelled_at, inserted_at)
        VALUES (%(state)s::oban_job_state, %(queue)s, 'app.W', '{}', %(errors)s, %(attempt)s,
                20, coalesce(%(scheduled)s, timezone('UTC', now())), %(attempted)s,
                %(completed)s, %(discarded)s, %(cancelled)s,
                coalesce(%(scheduled)s, timezone('UTC', now())))
        RETURNING id
        """,
        {
            "state": state,
            "queue": queue,
            "errors": Jsonb(errors or []),
            "attempt": attempt,
            "scheduled": naive(scheduled),
            "attempted": naive(attempted),
            **ends,
        },
    )
    row = await cur.fetchone()
    return int(row["id"] if isinstance(row, dict) else row[0])


async def rollup_rows(conn: Any) -> dict[tuple[datetime, str], tuple[int, ...]]:
    """Every rollup row: (minute UTC, queue) -> (completed, discarded, retried, cancelled,
    wait_count, wait_ms_sum, wait_ms_max)."""
    cur = await conn.execute("SELECT * FROM powertools_job_rollups ORDER BY minute, queue")
    found = {}
    for r in await cur.fetchall():
        found[(r["minute"].replace(tzinfo=UTC), r["queue"])] = (
            r["completed"],
            r["discarded"],
            r["retried"],
            r["cancelled"],
            r["wait_count"],
            r["wait_ms_sum"],
            r["wait_ms_max"],
        )
    return found
