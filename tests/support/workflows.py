"""Helpers for workflow tests: a step worker that records when it ran (database clock,
so runs on several nodes compare), and checks over those records."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from oban import Cancel, worker
from psycopg_pool import AsyncConnectionPool

QUEUE = "wf"

RUNS_TABLE = """
CREATE TABLE IF NOT EXISTS workflow_runs (
    id bigserial PRIMARY KEY,
    job_id bigint NOT NULL,
    workflow_id text NOT NULL,
    step text NOT NULL,
    node text,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz
)
"""
START = """
INSERT INTO workflow_runs (job_id, workflow_id, step, node)
VALUES (%(job_id)s, %(workflow_id)s, %(step)s, %(node)s) RETURNING id
"""
FINISH = "UPDATE workflow_runs SET finished_at = clock_timestamp() WHERE id = %(id)s"

_pools: dict[str, AsyncConnectionPool[Any]] = {}


async def open_runs(url: str) -> AsyncConnectionPool[Any]:
    """The pool the step workers of this process record through (one per process)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(RUNS_TABLE)
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(url, min_size=1, max_size=8, open=False)
    await pool.open()
    _pools["runs"] = pool
    return pool


async def close_runs() -> None:
    pool = _pools.pop("runs", None)
    if pool is not None:
        await pool.close()


@worker(queue=QUEUE, max_attempts=3)
class RecordedStep:
    """Records its run (start, finish), sleeps ``args["ms"]``; ``args["outcome"]``
    "cancel" cancels it, "discard" fails it (with max_attempts=1: discarded)."""

    async def process(self, job: Any) -> Any:
        pool = _pools["runs"]
        node = job.attempted_by[0] if job.attempted_by else None
        async with pool.connection() as conn:
            cur = await conn.execute(
                START,
                {
                    "job_id": job.id,
                    "workflow_id": job.meta.get("workflow_id", ""),
                    "step": job.meta.get("workflow_step", ""),
                    "node": node,
                },
            )
            row = await cur.fetchone()
            assert row is not None
        await asyncio.sleep(job.args.get("ms", 0) / 1000)
        outcome = job.args.get("outcome")
        if outcome == "cancel":
            return Cancel("the step asked to be cancelled")
        if outcome == "discard":
            raise RuntimeError("the step asked to fail")
        async with pool.connection() as conn:
            await conn.execute(FINISH, {"id": row[0]})
        return None


def step(ms: int = 0, outcome: str | None = None, max_attempts: int = 3, queue: str = QUEUE) -> Any:
    """A RecordedStep job; ``queue`` another than QUEUE: a step no node runs."""
    args: dict[str, Any] = {"ms": ms}
    if outcome:
        args["outcome"] = outcome
    return RecordedStep.new(args, max_attempts=max_attempts, queue=queue)


async def runs(url: str) -> list[dict[str, Any]]:
    from tests.support.limits import query

    return await query(url, "SELECT * FROM workflow_runs ORDER BY id")


def check_order(
    records: Sequence[Mapping[str, Any]], deps: Mapping[str, Sequence[str]]
) -> dict[str, Mapping[str, Any]]:
    """Every step finished exactly once and started after each of its dependencies
    finished; returns each step's finished run."""
    finished: dict[str, Mapping[str, Any]] = {}
    for r in records:
        if r["finished_at"] is not None:
            assert r["step"] not in finished, f"step {r['step']} completed twice"
            finished[r["step"]] = r
    assert set(finished) == set(deps), f"steps not completed: {set(deps) - set(finished)}"
    for name, ds in deps.items():
        for r in records:
            if r["step"] != name:
                continue
            for d in ds:
                assert r["started_at"] > finished[d]["finished_at"], (
                    f"step {name} started before its dependency {d} finished"
                )
    return finished


async def workflow_row(url: str, workflow_id: Any) -> dict[str, Any]:
    from tests.support.limits import query

    found = await query(
        url, "SELECT * FROM powertools_workflows WHERE id = %(id)s", {"id": workflow_id}
    )
    return found[0]
