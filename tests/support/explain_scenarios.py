"""Prepared situations for "why isn't this job running?": one per reason.

Each scenario writes the rows that make the reason true (jobs, producers, runtime nodes,
queue decisions, stored limits, rate-window starts, the round-robin's turn, a paused
cron entry) straight into a migrated database: real rows, which the explainer reads as
it reads a running system's. It returns the job to explain and what the answer must say.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

QUEUE = "exports"
NODE = "worker-1"


@dataclass(frozen=True)
class Expect:
    job_id: int
    code: str | None  # the reason that must be listed (None: nothing blocks it)
    evidence: tuple[str, ...]  # text the reason's evidence (or the answer) must hold


async def one(conn: Any, sql: str, params: dict[str, Any] | None = None) -> Any:
    cur = await conn.execute(sql, params or {})
    row = await cur.fetchone()
    return next(iter(row.values())) if row else None


async def job(
    conn: Any,
    *,
    state: str = "available",
    queue: str = QUEUE,
    worker: str = "app.Export",
    args: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    attempt: int = 0,
    max_attempts: int = 20,
    in_seconds: int = 0,
    attempted_by: list[str] | None = None,
) -> int:
    return int(
        await one(
            conn,
            """
            INSERT INTO oban_jobs (state, queue, worker, args, meta, attempt, max_attempts,
                                   scheduled_at, attempted_by, attempted_at, completed_at)
            VALUES (%(state)s::oban_job_state, %(queue)s, %(worker)s, %(args)s, %(meta)s,
                    %(attempt)s, %(max)s,
                    timezone('UTC', now()) + make_interval(secs => %(in)s), %(by)s,
                    CASE WHEN %(state)s IN ('executing', 'completed')
                         THEN timezone('UTC', now()) END,
                    CASE WHEN %(state)s = 'completed' THEN timezone('UTC', now()) END)
            RETURNING id
            """,
            {
                "state": state,
                "queue": queue,
                "worker": worker,
                "args": Jsonb(args or {}),
                "meta": Jsonb(meta or {}),
                "attempt": attempt,
                "max": max_attempts,
                "in": in_seconds,
                "by": attempted_by or [],
            },
        )
    )


async def producer(
    conn: Any,
    *,
    node: str = NODE,
    limit: int = 10,
    paused: bool = False,
    runtime: bool = True,
    age_seconds: int = 2,
) -> str:
    uuid = await one(
        conn,
        """
        INSERT INTO oban_producers (uuid, name, node, queue, meta, updated_at)
        VALUES (gen_random_uuid(), 'Oban', %(node)s, %(queue)s, %(meta)s,
                timezone('UTC', now()) - make_interval(secs => %(age)s))
        RETURNING uuid::text
        """,
        {
            "node": node,
            "queue": QUEUE,
            "meta": Jsonb({"local_limit": limit, "paused": paused}),
            "age": age_seconds,
        },
    )
    if runtime:
        await conn.execute(
            "INSERT INTO powertools_runtime_nodes (name, node, version) VALUES ('Oban', %s, 't')"
            " ON CONFLICT DO NOTHING",
            (node,),
        )
    return str(uuid)


async def limits(conn: Any, **columns: Any) -> None:
    """A stored limits row for the queue (as a node's declaration writes it)."""
    values = {"queue": QUEUE, "declared_by": NODE, **columns}
    names = ", ".join(values)
    marks = ", ".join(f"%({k})s" for k in values)
    await conn.execute(
        f"INSERT INTO powertools_queue_limits ({names}, declared_at) VALUES ({marks}, now())",
        values,
    )


async def running(conn: Any, n: int, uuid: str, **fields: Any) -> list[int]:
    return [
        await job(conn, state="executing", attempt=1, attempted_by=[NODE, uuid], **fields)
        for _ in range(n)
    ]


# -- one scenario per reason ---------------------------------------------------------------


async def scheduled(conn: Any) -> Expect:
    await producer(conn)
    jid = await job(conn, state="scheduled", in_seconds=7300)
    return Expect(jid, "scheduled", ("Scheduled at", "in 2 hours"))


async def retry_due(conn: Any) -> Expect:
    await producer(conn)
    jid = await job(conn, state="retryable", attempt=2, in_seconds=-120)
    return Expect(jid, "due", ("2 of 20 failed", "2 minutes ago"))


async def attempts_exhausted(conn: Any) -> Expect:
    await producer(conn)
    jid = await job(conn, attempt=3, max_attempts=3)
    return Expect(jid, "attempts_exhausted", ("Attempts: 3 of 3",))


async def queue_paused(conn: Any) -> Expect:
    await producer(conn, paused=True)
    await conn.execute(
        "INSERT INTO powertools_queue_states (queue, paused, changed_by_id, changed_by_label,"
        " reason) VALUES (%s, true, 'ops-demo', 'Ops Demo', 'provider outage')",
        (QUEUE,),
    )
    jid = await job(conn)
    return Expect(
        jid, "queue_paused", ("Paused by: Ops Demo (ops-demo)", "Why: provider outage", "Since")
    )


async def no_node(conn: Any) -> Expect:
    await producer(conn, node="worker-gone", age_seconds=600)
    jid = await job(conn)
    return Expect(jid, "no_node", ("no node has a live producer", "worker-gone 600 s ago"))


async def no_runtime(conn: Any) -> Expect:
    await producer(conn, node="plain-node", runtime=False)
    jid = await job(conn)
    return Expect(jid, "no_runtime", ("Running it without the runtime: plain-node",))


async def local_limit(conn: Any) -> Expect:
    uuid = await producer(conn, limit=2)
    await running(conn, 2, uuid)
    jid = await job(conn)
    return Expect(jid, "local_limit", ("Running per node: worker-1 2 of 2",))


async def global_limit(conn: Any) -> Expect:
    uuid = await producer(conn)
    await limits(conn, global_limit=2)
    ids = await running(conn, 2, uuid)
    jid = await job(conn)
    return Expect(
        jid,
        "global_limit",
        ("Running: 2 of 2 across all nodes", f"Executing jobs: {ids[0]}, {ids[1]}"),
    )


async def rate_limit(conn: Any) -> Expect:
    await producer(conn)
    await limits(conn, rate_allowed=5, rate_period=60)
    await conn.execute(
        "INSERT INTO powertools_limit_starts (queue, partition_key, bucket_end, starts)"
        " VALUES (%s, '', extract(epoch FROM now())::bigint - 30, 5)",
        (QUEUE,),
    )
    jid = await job(conn)
    return Expect(jid, "rate_limit", ("Starts in window: 5 of 5 per 60 s", "Window resets at"))


async def partition_turn(conn: Any) -> Expect:
    await producer(conn)
    await limits(
        conn,
        global_limit=1,
        global_partitioned=True,
        partition_fields=["args"],
        partition_keys=["customer_id"],
    )
    for customer in ("a", "b"):
        await job(conn, args={"customer_id": customer})
    jid = await job(conn, args={"customer_id": "c"})
    await conn.execute(
        "INSERT INTO powertools_limit_turns (queue, partition_key) VALUES (%s, '[\"a\"]')",
        (QUEUE,),
    )
    return Expect(
        jid,
        "partition_turn",
        ("Its partition: customer_id=c", "Partitions served before it this round: 1"),
    )


async def partition_unkeyed(conn: Any) -> Expect:
    await producer(conn)
    await limits(
        conn,
        global_limit=3,
        global_partitioned=True,
        partition_fields=["args"],
        partition_keys=["customer_id"],
    )
    jid = await job(conn, args={"customer_id": "a"})
    await conn.execute("UPDATE oban_jobs SET meta = meta - 'partition_key' WHERE id = %s", (jid,))
    return Expect(jid, "partition_unkeyed", ("Partitioned by: args.customer_id", "Its key: none"))


async def paused_entry(conn: Any) -> int:
    """A paused cron entry and a job it enqueued before the pause."""
    await conn.execute(
        """
        INSERT INTO powertools_cron_entries (name, source, worker, queue, expression, timezone,
                                             overlap_policy, catch_up_policy, paused, paused_at,
                                             paused_by_id, paused_by_label, paused_reason)
        VALUES ('nightly_export', 'runtime', 'app.Export', %s, '0 2 * * *', 'Etc/UTC',
                'skip', 'none', true, now(), 'ops-demo', 'Ops Demo', 'upstream maintenance')
        """,
        (QUEUE,),
    )
    return await job(conn, meta={"cron": True, "cron_name": "nightly_export"})


async def cron_entry_paused(conn: Any) -> Expect:
    await producer(conn)
    jid = await paused_entry(conn)
    return Expect(
        jid,
        "cron_entry_paused",
        ("Paused by: Ops Demo (ops-demo)", "Why: upstream maintenance", "Until: until resumed"),
    )


async def nothing_blocks(conn: Any) -> Expect:
    await producer(conn, limit=5)
    for _ in range(2):
        await job(conn)
    jid = await job(conn)
    return Expect(jid, None, ("2 jobs ahead of it in queue exports", "5 slots are free now"))


async def not_waiting(conn: Any) -> Expect:
    jid = await job(conn, state="completed", attempt=1)
    return Expect(jid, None, ("completed just now: it is not waiting to run",))


Scenario = Callable[[Any], Awaitable[Expect]]

SCENARIOS: dict[str, Scenario] = {
    f.__name__: f
    for f in (
        scheduled,
        retry_due,
        attempts_exhausted,
        queue_paused,
        no_node,
        no_runtime,
        local_limit,
        global_limit,
        rate_limit,
        partition_turn,
        partition_unkeyed,
        cron_entry_paused,
        nothing_blocks,
        not_waiting,
    )
}


# -- workflow steps (rows in the shape of migration 0009, see tests/support/workflow_rows) --


async def _workflow(conn: Any, steps: dict[str, Any]) -> Any:
    from tests.support.workflow_rows import build

    return await build(conn, "invoice", steps)


async def workflow_waiting(conn: Any) -> Expect:
    from tests.support.workflow_rows import StepSpec

    wf = await _workflow(
        conn,
        {
            "fetch": StepSpec(state="executing"),
            "price": StepSpec(state="completed"),
            "render": StepSpec(("fetch", "price")),
        },
    )
    return Expect(
        wf.jobs["render"],
        "workflow_dependencies",
        (
            f"Dependency fetch: executing (job {wf.jobs['fetch']})",
            f"Dependency price: completed (job {wf.jobs['price']})",
            "Workflow: invoice (executing)",
        ),
    )


async def workflow_release_missed(conn: Any) -> Expect:
    from tests.support.workflow_rows import StepSpec

    wf = await _workflow(
        conn, {"fetch": StepSpec(state="completed"), "render": StepSpec(("fetch",), pending=0)}
    )
    return Expect(
        wf.jobs["render"],
        "workflow_release_missed",
        (f"Dependency fetch: completed (job {wf.jobs['fetch']})",),
    )


async def workflow_dependency_failed(conn: Any) -> Expect:
    from tests.support.workflow_rows import StepSpec

    wf = await _workflow(
        conn,
        {
            "fetch": StepSpec(state="discarded", attempt=3),
            "render": StepSpec(
                ("fetch",), "cancelled", cancelled_by="workflow dependency fetch discarded"
            ),
        },
    )
    return Expect(
        wf.jobs["render"],
        "workflow_dependency_failed",
        (
            f"Dependency fetch: discarded (job {wf.jobs['fetch']})",
            "Recorded reason: workflow dependency fetch discarded",
        ),
    )


SCENARIOS.update(
    {f.__name__: f for f in (workflow_waiting, workflow_release_missed, workflow_dependency_failed)}
)
