"""Seed the demo database: cron entries, jobs in every state so the overview has
something to diagnose (failing mail, a discarded export, a job stuck on a dead node), and
composites enqueued through the real API for the worker to run: a month-end workflow
that completes, one whose ledger step fails (its dependents are cancelled: a
retry_workflow to try), per-account chains (one held by a failed link: a resume_chain to
try) and a batch with its exactly-once callback."""

from __future__ import annotations

import asyncio

import psycopg
from oban import Job, Oban
from psycopg.types.json import Jsonb

from oban_powertools import Workflow
from oban_powertools.batches import Batch
from oban_powertools.cron.declarations import declared, sync_declarations
from oban_powertools.db import connect

from . import settings, workers
from .powertools_config import powertools

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


def month_end(period: str, *, fail_first: bool = False) -> Workflow:
    """extract, then two customers' reports and the ledger side by side, then the summary
    mail once all three completed."""
    wf = Workflow(name=f"month_end_close {period}")
    wf.add("extract", workers.NightlySync.new({"period": period}))
    # Customers without the seeded export stuck on a dead node (it holds customer 3's
    # global-limit partition until the lifeline rescues it), so the workflow runs through.
    for customer in (11, 12):
        report = workers.GenerateReport.new(
            {"report": f"monthly {period}", "customer_id": customer}
        )
        wf.add(f"report_{customer}", report, deps=["extract"])
    ledger = workers.CloseLedger.new({"period": period, "fail_first": fail_first}, max_attempts=1)
    wf.add("ledger", ledger, deps=["extract"])
    # SendEmail is unique by recipient and subject; a workflow step is unique by its
    # workflow already, so the step opts out.
    summary = workers.SendEmail.new(
        {"to": "finance@example.com", "subject": f"close {period}"}, unique=None
    )
    wf.add("summary", summary, deps=["report_11", "report_12", "ledger"])
    return wf


def account_syncs() -> list[Job]:
    """Three syncs for each of two accounts; account 42's second one fails once for good
    (max_attempts 1), which holds the rest of its chain."""
    return [
        workers.SyncAccount.new(
            {"account": account, "sync": n, "fail": account == 42 and n == 2},
            chain=f"account:{account}",
            max_attempts=1,
        )
        for account in (42, 77)
        for n in (1, 2, 3)
    ]


async def seed_composites() -> int:
    """Enqueue the demo's composites through an oban client with Powertools' hooks (not
    started: the worker process runs them). Returns the number of jobs inserted."""
    pool = await Oban.create_pool(settings.DATABASE_URL, min_size=1, max_size=2)
    try:
        oban = Oban(pool=pool, queues={}, **powertools.oban_options())
        inserted = len(await month_end("2026-11").enqueue(oban))
        inserted += len(await month_end("2026-10", fail_first=True).enqueue(oban))
        inserted += len(await oban.enqueue_many(*account_syncs()))
        batch = Batch(
            name="import customers 2026-12",
            on_completed=workers.ImportFinished,
            callback_args={"import": "customers 2026-12"},
        )
        batch.add(
            *(
                workers.GenerateReport.new({"report": "import", "customer_id": n})
                for n in range(100, 105)
            )
        )
        inserted += len(await batch.enqueue(oban))
        return inserted
    finally:
        await pool.close()


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
        composites = await seed_composites()
        print(
            f"seeded {len(JOBS)} jobs, {composites} workflow, chain and batch jobs, and "
            f"{len(declared())} cron entries"
        )
    except psycopg.Error as exc:
        raise SystemExit(f"seeding failed: {exc}") from exc
    finally:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
