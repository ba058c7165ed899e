"""Inserting chain links and batches (the ``query.insert_jobs`` hook, for a batch of jobs
holding a ``chain=`` option or a :class:`~oban_powertools.batches.Batch`'s jobs).

Everything is written in ONE transaction (a savepoint in the caller's, with ``conn=``:
a rollback leaves nothing), one statement per table whatever the number of jobs:

1. the chains of the links are locked in key order, created when new, and positions
   reserved at their ends (``chains.reserve_links``). An idle chain's first new link is
   inserted runnable (it becomes the head); every other link is inserted ``suspended``
   and is released by its predecessor's ack. Because the ack of a head locks the same
   row before it looks for the next link, an insert and a completion racing on one
   chain are serialized: the insert either sees the chain idle (its link runs) or
   leaves a link the completion then sees (it releases it), never both, never neither;
2. the jobs (links, batch jobs, and plain jobs enqueued with them), ids drawn first;
3. the link rows and the batch rows with their membership.

A chain link or batch job that is also a workflow step or a unique job is refused
(nothing is inserted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from oban.job import Job, JobState
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ..batches.model import BATCH_KEY, INSERTED_MARK, BatchPlan
from ..batches.model import EXTRA_KEY as BATCH_EXTRA
from ..chains.options import CHAIN_KEY, SEQ_KEY, ChainSpec, parse_chain
from ..chains.options import EXTRA_KEY as CHAIN_EXTRA
from ..db.queries import StatementsInSchema
from ..errors import BatchError, ChainError
from .job_rows import job_columns, take_row

__all__ = ["INSERTED_MARK", "insert_jobs", "is_chain_or_batch"]

Q = StatementsInSchema(
    workflows="insert_jobs",
    chains="reserve_links insert_links",
    batches="insert_batches insert_batch_jobs",
)

# Marks of the other composites a link or batch job must not carry.
_WORKFLOW_MARKS = ("workflow", "workflow_id")


def is_chain_or_batch(job: Job) -> bool:
    extra = job.extra or {}
    return extra.get(CHAIN_EXTRA) is not None or isinstance(extra.get(BATCH_EXTRA), BatchPlan)


def _check(job: Job, chain: ChainSpec | None, batch: BatchPlan | None) -> None:
    what = "a chain link" if chain is not None else "a batch job"
    extra = job.extra or {}
    if extra.get("unique") is not None:
        cls = ChainError if chain is not None else BatchError
        raise cls(f"{job.worker}: {what} cannot be unique (build it with unique=None)")
    if any(mark in extra or mark in job.meta for mark in _WORKFLOW_MARKS):
        cls = ChainError if chain is not None else BatchError
        raise cls(f"{job.worker}: {what} cannot also be a workflow step")
    if batch is not None and job.meta.get(BATCH_KEY) != str(batch.id):
        raise BatchError(f"{job.worker}: a batch job must be built by Batch.jobs()")


async def insert_jobs(
    jobs: Sequence[Job],
    *,
    prefix: str,
    pool: Any,
    conn: AsyncConnection[Any] | AsyncCursor[Any] | None = None,
) -> list[Job]:
    """Insert ``jobs`` with their chains and batches (see the module docstring), through
    oban's ``pool`` or on the caller's ``conn``. Returns the jobs, updated in place."""
    chains = [
        parse_chain((j.extra or {}).get(CHAIN_EXTRA), where=f"{j.worker}: chain") for j in jobs
    ]
    batches: list[BatchPlan | None] = []
    for job, chain in zip(jobs, chains, strict=True):
        plan = (job.extra or {}).get(BATCH_EXTRA)
        batches.append(plan if isinstance(plan, BatchPlan) else None)
        if chain is not None or batches[-1] is not None:
            _check(job, chain, batches[-1])
    _check_batches_whole(jobs, batches)
    if any(_WORKFLOW_MARKS[0] in (j.extra or {}) for j in jobs):
        raise ChainError(
            "enqueue chain links and batches apart from a workflow's steps (a workflow "
            "orders its steps by their dependencies)"
        )
    if conn is not None:
        connection = conn.connection if isinstance(conn, AsyncCursor) else conn
        async with connection.transaction():
            return await _insert(connection, jobs, chains, batches, prefix)
    async with pool.connection() as pooled, pooled.transaction():
        return await _insert(pooled, jobs, chains, batches, prefix)


def _check_batches_whole(jobs: Sequence[Job], batches: Sequence[BatchPlan | None]) -> None:
    counts: dict[Any, int] = {}
    plans: dict[Any, BatchPlan] = {}
    for plan in batches:
        if plan is not None:
            counts[plan.id] = counts.get(plan.id, 0) + 1
            plans[plan.id] = plan
    for batch_id, n in counts.items():
        if n != plans[batch_id].total:
            raise BatchError(
                f"batch {plans[batch_id].name!r}: this insert holds {n} of its "
                f"{plans[batch_id].total} jobs; enqueue them together (batch.enqueue)"
            )


async def _insert(
    conn: AsyncConnection[Any],
    jobs: Sequence[Job],
    chains: Sequence[ChainSpec | None],
    batches: Sequence[BatchPlan | None],
    prefix: str,
) -> list[Job]:
    cur = conn.cursor(row_factory=dict_row)
    links = await _reserve(cur, jobs, chains, prefix)
    await cur.execute(Q.insert_jobs.at(prefix), job_columns(jobs, prefix))
    for row in await cur.fetchall():
        take_row(jobs[row["ord"] - 1], row)
    if links:
        await cur.execute(
            Q.insert_links.at(prefix),
            {
                "keys": [spec.key for _, spec, _ in links],
                "seqs": [seq for _, _, seq in links],
                "job_ids": [jobs[i].id for i, _, _ in links],
                "on_failure": [spec.on_failure for _, spec, _ in links],
            },
        )
    await _insert_batches(cur, jobs, batches, prefix)
    for job in jobs:
        if is_chain_or_batch(job):
            job.extra = {**(job.extra or {}), INSERTED_MARK: True}
    return list(jobs)


async def _reserve(
    cur: AsyncCursor[dict[str, Any]],
    jobs: Sequence[Job],
    chains: Sequence[ChainSpec | None],
    prefix: str,
) -> list[tuple[int, ChainSpec, int]]:
    """Reserve the links' positions, mark each link job with its chain and position,
    and suspend every link but the new head of an idle chain. Returns (job index, spec,
    seq) per link."""
    order: dict[str, list[int]] = {}
    for index, spec in enumerate(chains):
        if spec is not None:
            order.setdefault(spec.key, []).append(index)
    if not order:
        return []
    keys = sorted(order)
    await cur.execute(
        Q.reserve_links.at(prefix), {"keys": keys, "counts": [len(order[k]) for k in keys]}
    )
    links: list[tuple[int, ChainSpec, int]] = []
    for row in await cur.fetchall():
        indexes = order[row["key"]]
        first = row["last_seq"] - len(indexes) + 1
        for offset, index in enumerate(indexes):
            seq = first + offset
            job = jobs[index]
            spec = chains[index]
            assert spec is not None
            job.meta = {**job.meta, CHAIN_KEY: spec.key, SEQ_KEY: seq}
            runnable = row["state"] == "running" and row["head_seq"] == seq
            if not runnable:
                job.state = JobState.SUSPENDED
            links.append((index, spec, seq))
    return links


async def _insert_batches(
    cur: AsyncCursor[dict[str, Any]],
    jobs: Sequence[Job],
    batches: Sequence[BatchPlan | None],
    prefix: str,
) -> None:
    plans: dict[Any, BatchPlan] = {}
    members: list[tuple[int, Any]] = []
    for job, plan in zip(jobs, batches, strict=True):
        if plan is not None:
            plans[plan.id] = plan
            assert job.id is not None
            members.append((job.id, plan.id))
    if not plans:
        return
    await cur.execute(
        Q.insert_batches.at(prefix),
        {
            "ids": list(plans),
            "names": [p.name for p in plans.values()],
            "callbacks": [
                Jsonb({kind: spec.describe() for kind, spec in p.callbacks.items()})
                for p in plans.values()
            ],
            "totals": [p.total for p in plans.values()],
        },
    )
    await cur.execute(
        Q.insert_batch_jobs.at(prefix),
        {"job_ids": [m[0] for m in members], "batch_ids": [m[1] for m in members]},
    )
