"""Workflows: what a chain-shaped workflow costs over plain jobs, and release latency.

    python -m bench.workflows [--steps 1000] [--rounds 3] [--latency-steps 300]

1. Chain overhead: a 1,000-step workflow where each step depends on the one before
   (each step released by its upstream's ack), against 1,000 plain no-op jobs in a queue
   of limit 1 (so they too run one after the other: the chain cannot run two steps at
   once, and a wider plain queue would measure parallelism, not workflow cost). Timed
   from the enqueue until the last job completed; one Oban instance with the Powertools
   runtime on both sides, a fresh database per run, the sides alternating. The headline
   is the median of the rounds' ratios. Target: <= 1.5x. Beside the totals, each side's
   median per-job cycle (a job's start to the next one's start), which a burst of other
   load on a shared machine moves far less than a total.
2. Release latency: a two-wide ladder (each level's two steps depend on both steps of
   the level before) on two nodes, queue limit 1, whose stagers poll only every 10 s (a
   release that waited for the poll would show); for each step, the time from the ack
   of the dependency that released it (``completed_at``, the ack transaction's time) to
   its own start (``attempted_at``). Half the releases go to the other node through
   the insert notification. p50 / p95. Target: p95 <= 50 ms.

3. Ack cost: what the ack of one chain step costs against the ack of one plain job,
   through the same ``query.ack_jobs`` (the hooked one: a plain job goes to oban's own
   ack, a step to the composite ack, whose one statement also releases the next step),
   on one connection pool, the two alternating; each job made executing first as oban's
   fetch leaves it. Median ms of each and their ratio. No target of its own: it is the
   part of the chain's cycle the workflow adds, without the producer's loop around it.

Results go to the ``workflows`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from contextlib import AsyncExitStack
from typing import Any

import psycopg
from oban import Job, Oban, worker
from oban._executor import AckAction
from psycopg_pool import AsyncConnectionPool

from bench.actions import BenchAuth, PlainDisplay
from bench.common import Timing, machine, scratch_database
from bench.report import table, write_section
from oban_powertools import Config, Powertools, Workflow
from oban_powertools.db import migrate
from oban_powertools.runtime import Runtime

QUEUE = "bench_wf"
REMAINING = "SELECT count(*) FROM oban_jobs WHERE state <> 'completed'"
# Per job: from its start to the next job's start (the queue runs one at a time), ms.
CYCLES = """
SELECT extract(epoch FROM (lead(attempted_at) OVER (ORDER BY attempted_at) - attempted_at))
       * 1000
FROM oban_jobs
"""
# Per released step: from the ack of its last dependency (the one that released it) to
# its own start, and whether it started on another node than that dependency ran on.
GAPS = """
SELECT DISTINCT ON (d.id)
       extract(epoch FROM (d.attempted_at - u.completed_at)) * 1000 AS ms,
       u.attempted_by[1] <> d.attempted_by[1] AS other_node
FROM powertools_workflow_edges e
JOIN powertools_workflow_steps us ON us.workflow_id = e.workflow_id AND us.name = e.upstream
JOIN powertools_workflow_steps ds ON ds.workflow_id = e.workflow_id AND ds.name = e.downstream
JOIN oban_jobs u ON u.id = us.job_id
JOIN oban_jobs d ON d.id = ds.job_id
ORDER BY d.id, u.completed_at DESC
"""


@worker(queue=QUEUE)
class Noop:
    async def process(self, job: Job) -> None:
        return None


def powertools(url: str) -> Powertools:
    return Powertools(Config(database_url=url, auth=BenchAuth(), display=PlainDisplay()))


def ladder(levels: int) -> Workflow:
    """Two steps per level, each depending on both steps of the level before: the second
    ack of a level releases two jobs, one more than the acking node (queue limit 1)
    fetches itself, so the other one reaches the other node through the notification."""
    wf = Workflow(name="bench-ladder")
    wf.add("l0a", Noop.new({})).add("l0b", Noop.new({}))
    for i in range(1, levels):
        deps = [f"l{i - 1}a", f"l{i - 1}b"]
        wf.add(f"l{i}a", Noop.new({}), deps=deps).add(f"l{i}b", Noop.new({}), deps=deps)
    return wf


def chain(steps: int) -> Workflow:
    wf = Workflow(name="bench-chain")
    wf.add("s0", Noop.new({}))
    for i in range(1, steps):
        wf.add(f"s{i}", Noop.new({}), deps=[f"s{i - 1}"])
    return wf


async def _nodes(
    stack: AsyncExitStack,
    url: str,
    names: list[str],
    queues: dict[str, int] | None = None,
    **options: Any,
) -> list[Oban]:
    nodes = []
    for name in names:
        pool = AsyncConnectionPool(url, min_size=2, max_size=10, open=False)
        await stack.enter_async_context(pool)
        pt = powertools(url)
        await stack.enter_async_context(pt)
        runtime = Runtime(pt, declarations=[], import_oban_cron=False)
        oban = Oban(
            pool=pool,
            node=name,
            queues={QUEUE: 1} if queues is None else queues,
            **runtime.oban_options(**options),
        )
        await oban.start()
        stack.push_async_callback(oban.stop)
        nodes.append(oban)
    return nodes


async def _wait_done(raw: psycopg.AsyncConnection[Any]) -> None:
    while True:
        row = await (await raw.execute(REMAINING)).fetchone()
        if row is not None and row[0] == 0:
            return
        await asyncio.sleep(0.01)


async def run_once(steps: int, workflow: bool) -> tuple[float, float]:
    """Seconds from the enqueue until every job completed; and the median per-job cycle
    (one job's start to the next one's, ms), which a burst of load from other processes
    on the machine moves much less than the total."""
    with scratch_database("bench_wf") as url:
        await migrate.apply(url)
        async with (
            await psycopg.AsyncConnection.connect(url, autocommit=True) as raw,
            AsyncExitStack() as stack,
        ):
            (oban,) = await _nodes(stack, url, ["bench"])
            jobs = chain(steps) if workflow else None
            started = time.perf_counter()
            if jobs is not None:
                await jobs.enqueue(oban)
            else:
                await oban.enqueue_many([Noop.new({"n": n}) for n in range(steps)])
            await _wait_done(raw)
            elapsed = time.perf_counter() - started
            rows = await (await raw.execute(CYCLES)).fetchall()
            return elapsed, statistics.median(float(r[0]) for r in rows if r[0] is not None)


async def latency(steps: int) -> tuple[Timing, float]:
    """Upstream ack to dependent start, per step, over two nodes; and the share of steps
    that ran on another node than their upstream."""
    with scratch_database("bench_wf_lat") as url:
        await migrate.apply(url)
        async with (
            await psycopg.AsyncConnection.connect(url, autocommit=True) as raw,
            AsyncExitStack() as stack,
        ):
            nodes = await _nodes(stack, url, ["lat-a", "lat-b"], stager={"interval": 10.0})
            await asyncio.sleep(0.5)  # both notifiers listening
            await ladder(steps // 2).enqueue(nodes[0])
            await _wait_done(raw)
            rows = await (await raw.execute(GAPS)).fetchall()
    samples = [float(r[0]) for r in rows]
    other = sum(1 for r in rows if r[1]) / max(1, len(rows))
    return Timing(f"{steps}-step ladder, 2 nodes", samples), other


EXECUTING = """
UPDATE oban_jobs SET state = 'executing', attempt = attempt + 1,
       attempted_at = timezone('UTC', now()), attempted_by = ARRAY['bench']
WHERE id = %(id)s
RETURNING id, worker, queue, args, meta, attempt, max_attempts, attempted_at
"""


async def ack_cost(steps: int) -> tuple[Timing, Timing]:
    """Median ack of a chain step and of a plain job, alternating (see the docstring)."""
    with scratch_database("bench_wf_ack") as url:
        await migrate.apply(url)
        async with (
            await psycopg.AsyncConnection.connect(url, autocommit=True) as raw,
            AsyncExitStack() as stack,
        ):
            # No queue: nothing fetches but this loop.
            (oban,) = await _nodes(stack, url, ["bench-ack"], queues={})
            links = await chain(steps).enqueue(oban)
            plain = await oban.enqueue_many([Noop.new({"n": n}) for n in range(steps)])
            timed: dict[bool, list[float]] = {True: [], False: []}
            for link, job in zip(links, plain, strict=True):
                for is_step, target in ((True, link), (False, job)):
                    cur = await raw.execute(EXECUTING, {"id": target.id})
                    row = await cur.fetchone()
                    assert row is not None
                    executing = Job(
                        id=row[0],
                        worker=row[1],
                        queue=row[2],
                        args=row[3],
                        meta=row[4],
                        attempt=row[5],
                        max_attempts=row[6],
                        attempted_at=row[7],
                    )
                    started = time.perf_counter()
                    acked = await oban._query.ack_jobs([AckAction(executing, "completed")])
                    timed[is_step].append((time.perf_counter() - started) * 1000)
                    assert acked == [target.id]
            left = await (await raw.execute(REMAINING)).fetchone()
            assert left is not None and left[0] == 0  # every step was released by its ack
    return Timing("chain step", timed[True]), Timing("plain job", timed[False])


async def main(args: argparse.Namespace) -> None:
    print(f"# bench.workflows — {machine()}")
    plain: list[float] = []
    chained: list[float] = []
    plain_cycle: list[float] = []
    chain_cycle: list[float] = []
    for n in range(args.rounds):
        order = (False, True) if n % 2 == 0 else (True, False)
        for side in order:
            elapsed, cycle = await run_once(args.steps, side)
            (chained if side else plain).append(elapsed)
            (chain_cycle if side else plain_cycle).append(cycle)
        print(
            f"plain {plain[-1]:6.2f} s ({plain_cycle[-1]:.2f} ms/job)   "
            f"workflow chain {chained[-1]:6.2f} s ({chain_cycle[-1]:.2f} ms/step)"
        )
    ratios = [c / p for c, p in zip(chained, plain, strict=True)]
    ratio = statistics.median(ratios)
    cycle_ratios = [c / p for c, p in zip(chain_cycle, plain_cycle, strict=True)]
    cycle_ratio = statistics.median(cycle_ratios)
    print(f"chain / plain: median {ratio:.2f}x ({', '.join(f'{r:.2f}' for r in ratios)})")
    print(
        f"per-job cycle, chain / plain: median {cycle_ratio:.2f}x "
        f"({', '.join(f'{r:.2f}' for r in cycle_ratios)})"
    )
    timing, other = await latency(args.latency_steps)
    print(
        f"release latency ({timing.label}): p50 {timing.p50:.1f} ms, p95 {timing.p95:.1f} ms, "
        f"{other:.0%} of steps on the other node"
    )
    step_ack, plain_ack = await ack_cost(args.steps)
    ack_ratio = step_ack.p50 / plain_ack.p50
    print(
        f"ack: chain step {step_ack.p50:.2f} ms, plain job {plain_ack.p50:.2f} ms (p50), "
        f"{ack_ratio:.2f}x"
    )
    rows = [
        [
            f"{args.steps:,} plain no-op jobs, queue limit 1",
            f"{statistics.median(plain):.2f} s",
            ", ".join(f"{p:.2f}" for p in plain),
            "",
        ],
        [
            f"{args.steps:,}-step chain workflow, same queue",
            f"{statistics.median(chained):.2f} s",
            ", ".join(f"{c:.2f}" for c in chained),
            "",
        ],
        [
            "chain / plain (median of the rounds' ratios)",
            f"{ratio:.2f}x",
            ", ".join(f"{r:.2f}" for r in ratios),
            "yes" if ratio <= 1.5 else "**no**",
        ],
        [
            "median per-job cycle (a start to the next), plain / chain",
            f"{statistics.median(plain_cycle):.2f} / {statistics.median(chain_cycle):.2f} ms",
            "plain "
            + ", ".join(f"{p:.2f}" for p in plain_cycle)
            + "; chain "
            + ", ".join(f"{c:.2f}" for c in chain_cycle),
            "",
        ],
        [
            "per-job cycle, chain / plain (median of the rounds' ratios)",
            f"{cycle_ratio:.2f}x",
            ", ".join(f"{r:.2f}" for r in cycle_ratios),
            "",
        ],
        [
            f"release latency, upstream ack to dependent start ({timing.label}, stager poll 10 s)",
            f"p95 {timing.p95:.1f} ms",
            f"p50 {timing.p50:.1f} ms, max {max(timing.samples):.1f} ms, "
            f"{other:.0%} started on the other node",
            "yes" if timing.p95 <= 50 else "**no**",
        ],
        [
            "one ack through query.ack_jobs, chain step / plain job (p50)",
            f"{ack_ratio:.2f}x",
            f"step {step_ack.p50:.2f} ms (p95 {step_ack.p95:.2f}), "
            f"plain {plain_ack.p50:.2f} ms (p95 {plain_ack.p95:.2f}), "
            f"{len(step_ack.samples):,} each",
            "",
        ],
    ]
    body = (
        f"Chain overhead: a {args.steps:,}-step workflow where each step depends on the one "
        f"before, against {args.steps:,} plain no-op jobs, both in a queue of limit 1 on one "
        "Oban instance with the Powertools runtime, timed from the enqueue to the last "
        f"completion; {args.rounds} alternating rounds, a fresh database each. Release "
        "latency: a two-wide ladder on two nodes (queue limit 1) whose stagers poll every "
        "10 s; per step, from the ack of the dependency that released it (completed_at) to "
        "its start (attempted_at). Targets: chain <= 1.5x plain; release p95 <= 50 ms. "
        "The per-job cycle (median, from one job's start to the next one's) is shown "
        "beside the totals: on a shared machine a burst of other load moves a total far "
        "more than it moves the median. Last, one ack of a chain step against one of a "
        "plain job, through the same hooked query.ack_jobs, alternating.\n\n"
        + table(["measure", "result", "all rounds / detail", "met"], rows)
    )
    write_section(args.section, "Workflows: chain overhead and release latency", body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-steps", type=int, default=300)
    parser.add_argument("--section", default="workflows")
    asyncio.run(main(parser.parse_args()))
