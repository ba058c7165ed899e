"""Nothing leaves a limited queue wedged: pausing (oban #1019), restarting, a partition
declared after the jobs were inserted, jobs inserted by plain SQL."""

from __future__ import annotations

import asyncio
from typing import Any

from oban import worker
from oban.worker import worker_name

from tests.support.limits import Sampler, count, oban_nodes, query
from tests.support.waiting import eventually

BY_CUSTOMER = {"fields": ["args"], "keys": ["customer_id"]}


@worker(queue="robust")
class RobustJob:
    async def process(self, job: Any) -> None:
        await asyncio.sleep(job.args.get("ms", 20) / 1000)


def in_state(state: str) -> str:
    return f"SELECT count(*) AS n FROM oban_jobs WHERE queue = 'robust' AND state = '{state}'"


async def states(url: str) -> dict[str, int]:
    rows = await query(
        url, "SELECT state, count(*) AS n FROM oban_jobs WHERE queue = 'robust' GROUP BY 1"
    )
    return {r["state"]: int(r["n"]) for r in rows}


async def all_completed(url: str, n: int) -> bool:
    return await count(url, in_state("completed")) == n


async def test_a_paused_queue_with_a_global_limit_resumes_and_runs_everything(
    db_url: str,
) -> None:
    options = {"limit": 5, "global_limit": 2, "rate_limit": {"allowed": 1000, "period": 60}}
    async with oban_nodes(db_url, ["pause-a", "pause-b"], {"robust": options}) as nodes:
        await nodes[0].enqueue_many(*[RobustJob.new({"n": n, "ms": 30}) for n in range(40)])
        await eventually(lambda: _at_least(db_url, "completed", 5), within=10, what="some jobs ran")
        await nodes[0].pause_queue("robust")  # every node
        # What was running finishes and is acknowledged; nothing new starts.
        await eventually(
            lambda: _exactly(db_url, "executing", 0), within=10, what="in-flight jobs done"
        )
        paused_at = await states(db_url)
        assert paused_at.get("available", 0) > 0
        await nodes[1].resume_queue("robust")
        await eventually(lambda: all_completed(db_url, 40), within=15, what="all 40 completed")


async def test_a_queue_declared_paused_with_limits_runs_once_resumed(db_url: str) -> None:
    options = {"limit": 5, "global_limit": 2, "paused": True}
    async with oban_nodes(db_url, ["paused-a"], {"robust": options}) as nodes:
        await nodes[0].enqueue_many(*[RobustJob.new({"n": n, "ms": 1}) for n in range(10)])
        assert (await states(db_url)) == {"available": 10}
        await nodes[0].resume_queue("robust")
        await eventually(lambda: all_completed(db_url, 10), within=10, what="all 10 completed")


async def test_a_restart_mid_run_does_not_wedge_the_limiter(db_url: str) -> None:
    options = {"limit": 4, "global_limit": 2, "rate_limit": {"allowed": 500, "period": 5}}
    async with oban_nodes(db_url, ["restart-a"], {"robust": options}) as nodes:
        await nodes[0].enqueue_many(*[RobustJob.new({"n": n, "ms": 40}) for n in range(60)])
        await eventually(lambda: _at_least(db_url, "executing", 1), within=10, what="running")
    # oban.stop waited for the running jobs: executing-then-completed, nothing left behind.
    after_stop = await states(db_url)
    assert after_stop.get("executing", 0) == 0
    assert after_stop.get("available", 0) > 0
    sampler = Sampler(db_url, "robust")
    async with oban_nodes(db_url, ["restart-a"], {"robust": options}):
        sampler.start()
        await eventually(lambda: all_completed(db_url, 60), within=20, what="all 60 completed")
        await sampler.stop()
    assert sampler.max_total <= 2


async def test_jobs_inserted_before_the_partition_was_declared_are_rekeyed_and_run(
    db_url: str,
) -> None:
    # Phase 1: the queue is partitioned by worker (and paused, so nothing runs).
    by_worker = {"global_limit": {"allowed": 1, "partition": {"fields": ["worker"]}}}
    async with oban_nodes(
        db_url, ["rekey-a"], {"robust": {"limit": 5, "paused": True, **by_worker}}
    ) as nodes:
        await nodes[0].enqueue_many(
            *[RobustJob.new({"customer_id": n % 4, "ms": 5}) for n in range(20)]
        )
    keys = await query(db_url, "SELECT DISTINCT meta ->> 'partition_key' AS k FROM oban_jobs")
    assert [r["k"] for r in keys] == [f'["{worker_name(RobustJob)}"]']
    # Plain SQL while the queue is partitioned by worker: keyed by worker, too.
    await query(
        db_url,
        "INSERT INTO oban_jobs (worker, queue, args, state) SELECT %(worker)s, 'robust', "
        "jsonb_build_object('customer_id', g %% 4, 'ms', 5), 'available' "
        "FROM generate_series(1, 20) g RETURNING id",
        {"worker": worker_name(RobustJob)},
    )
    # Jobs with no key at all: inserted before any node declared the queue's limits.
    await query(db_url, "DELETE FROM powertools_queue_limits RETURNING queue")
    await query(
        db_url,
        "INSERT INTO oban_jobs (worker, queue, args, state) SELECT %(worker)s, 'robust', "
        "jsonb_build_object('customer_id', g %% 4, 'ms', 5), 'available' "
        "FROM generate_series(1, 20) g RETURNING id",
        {"worker": worker_name(RobustJob)},
    )
    unkeyed = "SELECT count(*) AS n FROM oban_jobs WHERE NOT meta ? 'partition_key'"
    assert await count(db_url, unkeyed) == 20
    # Phase 2: the code now partitions by customer; the node re-keys every job and runs them.
    sampler = Sampler(db_url, "robust", key="customer_id")
    by_customer = {"global_limit": {"allowed": 1, "partition": BY_CUSTOMER}}
    async with oban_nodes(db_url, ["rekey-a"], {"robust": {"limit": 5, **by_customer}}):
        sampler.start()
        await eventually(lambda: all_completed(db_url, 60), within=20, what="all 60 completed")
        await sampler.stop()
    keys = await query(
        db_url,
        "SELECT DISTINCT meta ->> 'partition_key' AS k, args ->> 'customer_id' AS c "
        "FROM oban_jobs ORDER BY 2",
    )
    assert [(r["k"], r["c"]) for r in keys] == [(f"[{c}]", str(c)) for c in range(4)]
    assert sampler.max_partition <= 1


async def test_jobs_inserted_by_plain_sql_into_a_partitioned_queue_are_keyed_and_run(
    db_url: str,
) -> None:
    partition = {"fields": ["worker", "args"], "keys": ["customer_id", "region"]}
    options = {"limit": 5, "global_limit": {"allowed": 1, "partition": partition}}
    async with oban_nodes(db_url, ["sql-a"], {"robust": options}):
        rows = await query(
            db_url,
            "INSERT INTO oban_jobs (worker, queue, args, meta, state) SELECT %(worker)s, "
            "'robust', jsonb_build_object('customer_id', 'c' || (g %% 3), 'ms', 2), "
            "'{\"origin\": \"sql\"}', 'available' FROM generate_series(1, 30) g "
            "RETURNING meta",
            {"worker": worker_name(RobustJob)},
        )
        await eventually(lambda: all_completed(db_url, 30), within=15, what="all 30 completed")
    worker_json = f'"{worker_name(RobustJob)}"'
    # The trigger keyed every row as it was inserted (a missing args key is null), keeping
    # the meta the insert gave.
    assert {r["meta"]["partition_key"] for r in rows} == {
        f'[{worker_json}, "c{c}", null]' for c in range(3)
    }
    assert all(r["meta"]["origin"] == "sql" for r in rows)


async def _at_least(url: str, state: str, n: int) -> bool:
    return await count(url, in_state(state)) >= n


async def _exactly(url: str, state: str, n: int) -> bool:
    return await count(url, in_state(state)) == n
