"""Seed the demo database: cron entries, and jobs in every state so the overview has
something to diagnose (failing mail, a discarded export, a job stuck on a dead node)."""

from __future__ import annotations

import asyncio

import psycopg
from psycopg.types.json import Jsonb

from oban_powertools.cron.declarations import declared, sync_declarations
from oban_powertools.db import connect

from . import settings, workers  # noqa: F401  (declares the cron entries)

ERROR = (
    "Traceback (most recent call last):\n"
    '  File "examples/fastapi_host/workers.py", line 27, in process\n'
    "RuntimeError: SMTP 550: mailbox {to} unavailable"
)

JOB = """
INSERT INTO oban_jobs (state, queue, worker, args, attempt, max_attempts, errors, attempted_by,
                       inserted_at, scheduled_at, attempted_at, completed_at, cancelled_at,
                       discarded_at, tags)
VALUES (%(state)s::oban_job_state, %(queue)s, %(worker)s, %(args)s, %(attempt)s,
        %(max_attempts)s, %(errors)s, %(attempted_by)s,
        timezone('UTC', now()) - (%(ago)s + 5) * interval '1 second',
        timezone('UTC', now()) + %(scheduled_in)s * interval '1 second',
        CASE WHEN %(attempt)s > 0 THEN timezone('UTC', now()) - %(ago)s * interval '1 second' END,
        CASE WHEN %(state)s = 'completed' THEN timezone('UTC', now()) - %(ago)s * interval '1 second' END,
        CASE WHEN %(state)s = 'cancelled' THEN timezone('UTC', now()) END,
        CASE WHEN %(state)s = 'discarded' THEN timezone('UTC', now()) END,
        %(tags)s)
"""

MAIL = "examples.fastapi_host.workers.SendEmail"
REPORT = "examples.fastapi_host.workers.GenerateReport"
SYNC = "examples.fastapi_host.workers.NightlySync"


def job(
    state: str,
    queue: str,
    worker: str,
    args: dict[str, object],
    *,
    attempt: int = 0,
    max_attempts: int = 20,
    errors: int = 0,
    scheduled_in: int = 0,
    ago: int = 60,
    node: str | None = None,
    tags: tuple[str, ...] = (),
) -> dict[str, object]:
    to = str(args.get("to", "?"))
    return {
        "state": state,
        "queue": queue,
        "worker": worker,
        "args": Jsonb(args),
        "attempt": attempt,
        "max_attempts": max_attempts,
        "errors": Jsonb(
            [
                {"attempt": n + 1, "at": "2026-11-21T01:00:00", "error": ERROR.format(to=to)}
                for n in range(errors)
            ]
        ),
        "attempted_by": [node, "00000000-0000-0000-0000-000000000000"] if node else [],
        "scheduled_in": scheduled_in,
        "ago": ago,
        "tags": list(tags),
    }


JOBS = [
    *[
        job("completed", "mailers", MAIL, {"to": f"user{i}@example.com"}, attempt=1)
        for i in range(8)
    ],
    *[
        job("completed", "exports", REPORT, {"report": "daily", "customer_id": 7}, attempt=1)
        for _ in range(3)
    ],
    job("completed", "default", SYNC, {}, attempt=1, ago=86_400),
    *[job("available", "mailers", MAIL, {"to": f"new{i}@example.com"}) for i in range(3)],
    job(
        "scheduled",
        "exports",
        REPORT,
        {"report": "monthly", "customer_id": 3, "api_key": "sk-live-123"},
        scheduled_in=3600,
    ),
    *[
        job(
            "retryable",
            "mailers",
            MAIL,
            {"to": f"bounce{i}@example.com"},
            attempt=2,
            errors=2,
            scheduled_in=120,
            tags=("billing",),
        )
        for i in range(3)
    ],
    job(
        "discarded",
        "mailers",
        MAIL,
        {"to": "gone@example.com"},
        attempt=20,
        errors=3,
        tags=("billing",),
    ),
    job(
        "discarded",
        "exports",
        REPORT,
        {"report": "quarterly", "customer_id": 5, "password": "hunter2"},
        attempt=20,
        errors=1,
    ),
    job("cancelled", "exports", REPORT, {"report": "adhoc", "customer_id": 7}),
    # Executing for an hour on a node that no longer exists: the lifeline's business.
    job(
        "executing",
        "exports",
        REPORT,
        {"report": "yearly", "customer_id": 3},
        attempt=1,
        ago=3600,
        node="worker-gone.1",
    ),
]


async def main() -> None:
    conn = await connect(settings.DATABASE_URL)
    try:
        async with conn.transaction():
            await sync_declarations(conn, declared())
        cur = await conn.execute("SELECT count(*) AS n FROM oban_jobs")
        row = await cur.fetchone()
        if row and row["n"] > 0:
            print("demo jobs already seeded")
            return
        async with conn.transaction():
            for params in JOBS:
                await conn.execute(JOB, params)
        print(f"seeded {len(JOBS)} jobs and {len(declared())} cron entries")
    except psycopg.Error as exc:
        raise SystemExit(f"seeding failed: {exc}") from exc
    finally:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
