"""The limits hold across nodes: three oban instances (own pools, own runtimes, distinct
node names) on one database, thousands of jobs of random durations.

Two witnesses for every global limit: a sampler counting the queue's executing rows every
10 ms, and the workers themselves (all three nodes run in this process, so a counter in
``process`` sees the real concurrency across nodes). Rate limits are checked from the
jobs' ``attempted_at``: every window of the period, anchored at each start."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from oban import worker

from tests.support.limits import (
    Concurrency,
    Sampler,
    count,
    max_in_window,
    oban_nodes,
    query,
)
from tests.support.waiting import eventually

NODES = ["limits-a", "limits-b", "limits-c"]
WORKING = Concurrency()
PARTS = Concurrency()


@worker(queue="exact_global")
class GlobalJob:
    async def process(self, job: Any) -> None:
        WORKING.enter()
        try:
            await asyncio.sleep(job.args["ms"] / 1000)
        finally:
            WORKING.leave()


@worker(queue="exact_partitioned")
class PartitionedJob:
    async def process(self, job: Any) -> None:
        part = str(job.args["customer_id"])
        PARTS.enter(part)
        try:
            await asyncio.sleep(job.args["ms"] / 1000)
        finally:
            PARTS.leave(part)


@worker(queue="exact_rate")
class RatedJob:
    async def process(self, job: Any) -> None:
        await asyncio.sleep(job.args["ms"] / 1000)


REMAINING = "SELECT count(*) AS n FROM oban_jobs WHERE queue = %(queue)s AND state <> 'completed'"


async def finished(url: str, queue: str) -> bool:
    return await count(url, REMAINING, {"queue": queue}) == 0


async def test_global_limit_holds_across_three_nodes(db_url: str) -> None:
    rng = random.Random(14)
    queue, allowed, jobs = "exact_global", 4, 2_000
    sampler = Sampler(db_url, queue)
    async with oban_nodes(db_url, NODES, {queue: {"limit": 10, "global_limit": allowed}}) as nodes:
        sampler.start()
        await nodes[0].enqueue_many(
            *[GlobalJob.new({"n": n, "ms": rng.randint(1, 30)}) for n in range(jobs)]
        )
        await eventually(lambda: finished(db_url, queue), within=40, what="all jobs completed")
        await sampler.stop()
    assert sampler.samples > 100
    assert sampler.max_total <= allowed, f"{sampler.max_total} executing, limit {allowed}"
    assert WORKING.peak <= allowed, f"{WORKING.peak} in process() at once, limit {allowed}"
    assert WORKING.peak == allowed  # the limit is used, not just respected
    by_node = await query(
        db_url,
        "SELECT attempted_by[1] AS node, count(*) AS n FROM oban_jobs "
        "WHERE queue = %(queue)s GROUP BY 1",
        {"queue": queue},
    )
    assert {r["node"] for r in by_node} == set(NODES)  # every node took part
    assert sum(r["n"] for r in by_node) == jobs
    print(f"global: max executing sampled {sampler.max_total}, in process {WORKING.peak}")


async def test_partitioned_global_limit_holds_per_partition_across_three_nodes(
    db_url: str,
) -> None:
    rng = random.Random(15)
    queue, jobs, customers = "exact_partitioned", 1_500, 12
    partition = {"fields": ["args"], "keys": ["customer_id"]}
    sampler = Sampler(db_url, queue, key="customer_id")
    async with oban_nodes(
        db_url,
        NODES,
        {queue: {"limit": 10, "global_limit": {"allowed": 1, "partition": partition}}},
    ) as nodes:
        sampler.start()
        await nodes[1].enqueue_many(
            *[
                PartitionedJob.new(
                    {"customer_id": rng.randrange(customers), "ms": rng.randint(1, 30)}
                )
                for _ in range(jobs)
            ]
        )
        await eventually(lambda: finished(db_url, queue), within=40, what="all jobs completed")
        await sampler.stop()
    assert sampler.samples > 100
    assert sampler.max_partition <= 1, f"{sampler.max_partition} executing in one partition"
    assert PARTS.peak_part <= 1, f"{PARTS.peak_part} in process() for one customer"
    assert PARTS.peak > 1  # partitions ran side by side: the limit is per partition
    print(f"partitioned: max per partition {sampler.max_partition}, total peak {PARTS.peak}")


async def test_rate_limit_holds_in_every_sliding_window_across_three_nodes(db_url: str) -> None:
    rng = random.Random(16)
    queue, allowed, period, jobs = "exact_rate", 50, 2, 200
    async with oban_nodes(
        db_url, NODES, {queue: {"limit": 10, "rate_limit": {"allowed": allowed, "period": period}}}
    ) as nodes:
        began = time.monotonic()
        await nodes[2].enqueue_many(
            *[RatedJob.new({"n": n, "ms": rng.randint(1, 30)}) for n in range(jobs)]
        )
        await eventually(lambda: finished(db_url, queue), within=30, what="all jobs completed")
        took = time.monotonic() - began
    rows = await query(
        db_url,
        "SELECT attempted_at FROM oban_jobs WHERE queue = %(queue)s ORDER BY attempted_at",
        {"queue": queue},
    )
    starts = [r["attempted_at"] for r in rows]
    assert len(starts) == jobs
    most = max_in_window(starts, period)
    assert most <= allowed, f"{most} starts in one {period} s window, allowed {allowed}"
    assert most == allowed  # a full window's worth was let through
    # Not starved: 200 starts need 3 more windows after the first batch; each start is
    # forgotten at most one 1 s bucket after its period ends, and a node is poked when the
    # oldest bucket leaves.
    span = (starts[-1] - starts[0]).total_seconds()
    assert (jobs // allowed - 1) * period <= span <= (jobs // allowed - 1) * (period + 1) + 1.0
    print(
        f"rate: most starts in a {period} s window {most}/{allowed}; span {span:.2f} s, {took:.1f} s"
    )
