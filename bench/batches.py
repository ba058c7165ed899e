"""Chains and batches: what counting a batch and ordering a chain cost over plain jobs,
and how soon a batch's callback follows its last job.

    python -m bench.batches [--batch-jobs 10000] [--links 1000] [--keys 10] [--rounds 2]

1. Batch: 10,000 no-op jobs as one batch with an ``on_completed`` callback, against the
   same 10,000 jobs plain, in a queue of limit 20 on one Oban instance with the
   Powertools runtime; timed from the enqueue to the last completion. Callback latency:
   from the moment the last job's ``process`` returned (the worker's clock) to the
   callback job's insert (committed with the ack that finished the batch:
   ``inserted_at``) and to its start (``attempted_at``).
2. Chain: 1,000 links over 10 chain keys (each key's links strictly one after another)
   against 1,000 plain jobs, both in a queue of limit 10 (so at most 10 run at once on
   either side: the chains cannot run more than one link per key), timed from the
   enqueue to the last completion.

Sides alternate, a fresh database per run. Results go to the ``batches`` section of
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import psycopg
from oban import Job, Oban, worker
from psycopg_pool import AsyncConnectionPool

from bench.actions import BenchAuth, PlainDisplay
from bench.common import Timing, machine, scratch_database
from bench.report import table, write_section
from oban_powertools import Config, Powertools
from oban_powertools.batches import Batch
from oban_powertools.db import migrate
from oban_powertools.runtime import Runtime

QUEUE = "bench_batch"
REMAINING = "SELECT count(*) FROM oban_jobs WHERE state <> 'completed'"
CALLBACK = (
    "SELECT extract(epoch FROM inserted_at AT TIME ZONE 'UTC'), "
    "extract(epoch FROM attempted_at AT TIME ZONE 'UTC') FROM oban_jobs "
    "WHERE meta ? 'batch_callback'"
)
LAST_END: list[float] = [0.0]


@worker(queue=QUEUE)
class Noop:
    async def process(self, job: Job) -> None:
        LAST_END[0] = max(LAST_END[0], datetime.now(UTC).timestamp())


@worker(queue="bench_callbacks")
class Done:
    async def process(self, job: Job) -> None:
        return None


def powertools(url: str) -> Powertools:
    return Powertools(Config(database_url=url, auth=BenchAuth(), display=PlainDisplay()))


async def _node(stack: AsyncExitStack, url: str, limit: int) -> Oban:
    pool = AsyncConnectionPool(url, min_size=2, max_size=10, open=False)
    await stack.enter_async_context(pool)
    pt = powertools(url)
    await stack.enter_async_context(pt)
    runtime = Runtime(pt, declarations=[], import_oban_cron=False)
    oban = Oban(
        pool=pool,
        node="bench",
        queues={QUEUE: limit, "bench_callbacks": 2},
        **runtime.oban_options(),
    )
    await oban.start()
    stack.push_async_callback(oban.stop)
    return oban


async def _wait_done(raw: psycopg.AsyncConnection[Any], expected_callbacks: int) -> None:
    while True:
        row = await (await raw.execute(REMAINING)).fetchone()
        callbacks = await (await raw.execute(CALLBACK)).fetchall()
        if row is not None and row[0] == 0 and len(callbacks) >= expected_callbacks:
            return
        await asyncio.sleep(0.02)


async def run_batch(jobs: int, batched: bool) -> tuple[float, float | None, float | None]:
    """Seconds from the enqueue to the last completion; with a batch, the callback's
    insert and start after the last job returned (ms)."""
    LAST_END[0] = 0.0
    with scratch_database("bench_batch") as url:
        await migrate.apply(url)
        async with (
            await psycopg.AsyncConnection.connect(url, autocommit=True) as raw,
            AsyncExitStack() as stack,
        ):
            oban = await _node(stack, url, 20)
            started = time.perf_counter()
            if batched:
                batch = Batch(name="bench", on_completed=Done)
                await batch.add(*(Noop.new({"n": n}) for n in range(jobs))).enqueue(oban)
            else:
                await oban.enqueue_many([Noop.new({"n": n}) for n in range(jobs)])
            await _wait_done(raw, 1 if batched else 0)
            took = time.perf_counter() - started
            if not batched:
                return took, None, None
            ((inserted, attempted),) = await (await raw.execute(CALLBACK)).fetchall()
    return took, (float(inserted) - LAST_END[0]) * 1000, (float(attempted) - LAST_END[0]) * 1000


async def run_chain(links: int, keys: int, chained: bool) -> float:
    with scratch_database("bench_chain") as url:
        await migrate.apply(url)
        async with (
            await psycopg.AsyncConnection.connect(url, autocommit=True) as raw,
            AsyncExitStack() as stack,
        ):
            oban = await _node(stack, url, keys)
            started = time.perf_counter()
            await oban.enqueue_many(
                [
                    Noop.new({"n": n}, chain=f"key:{n % keys}") if chained else Noop.new({"n": n})
                    for n in range(links)
                ]
            )
            await _wait_done(raw, 0)
            return time.perf_counter() - started


async def main(args: argparse.Namespace) -> None:
    print(f"# bench.batches — {machine()}")
    plain: list[float] = []
    batched: list[float] = []
    inserted: list[float] = []
    started: list[float] = []
    for n in range(args.rounds):
        for side in (False, True) if n % 2 == 0 else (True, False):
            took, ins, att = await run_batch(args.batch_jobs, side)
            if side:
                batched.append(took)
                assert ins is not None and att is not None
                inserted.append(ins)
                started.append(att)
            else:
                plain.append(took)
        print(
            f"plain {plain[-1]:6.2f} s   batch {batched[-1]:6.2f} s   callback inserted "
            f"{inserted[-1]:.1f} ms, started {started[-1]:.1f} ms after the last job"
        )
    batch_ratios = [b / p for b, p in zip(batched, plain, strict=True)]
    plain_c: list[float] = []
    chained: list[float] = []
    for n in range(args.rounds):
        for side in (False, True) if n % 2 == 0 else (True, False):
            (chained if side else plain_c).append(await run_chain(args.links, args.keys, side))
        print(f"plain {plain_c[-1]:6.2f} s   chains {chained[-1]:6.2f} s")
    chain_ratios = [c / p for c, p in zip(chained, plain_c, strict=True)]
    ins_t = Timing("callback insert", inserted)
    att_t = Timing("callback start", started)

    def rounds(values: list[float], fmt: str = "{:.2f}") -> str:
        return ", ".join(fmt.format(v) for v in values)

    rows = [
        [
            f"{args.batch_jobs:,} plain no-op jobs, limit 20",
            f"{statistics.median(plain):.2f} s",
            rounds(plain),
        ],
        [
            "the same as one batch with on_completed",
            f"{statistics.median(batched):.2f} s",
            rounds(batched),
        ],
        [
            "batch / plain (median of the rounds' ratios)",
            f"{statistics.median(batch_ratios):.2f}x",
            rounds(batch_ratios),
        ],
        [
            "callback inserted after the last job returned",
            f"median {ins_t.p50:.1f} ms",
            rounds(inserted, "{:.1f} ms"),
        ],
        [
            "callback started after the last job returned",
            f"median {att_t.p50:.1f} ms",
            rounds(started, "{:.1f} ms"),
        ],
        [
            f"{args.links:,} plain no-op jobs, limit {args.keys}",
            f"{statistics.median(plain_c):.2f} s",
            rounds(plain_c),
        ],
        [
            f"{args.links:,} links over {args.keys} chain keys, same queue",
            f"{statistics.median(chained):.2f} s",
            rounds(chained),
        ],
        [
            "chains / plain (median of the rounds' ratios)",
            f"{statistics.median(chain_ratios):.2f}x",
            rounds(chain_ratios),
        ],
    ]
    for row in rows:
        print(" | ".join(row))
    body = (
        f"Batch: {args.batch_jobs:,} no-op jobs enqueued as one batch with an on_completed "
        "callback against the same jobs plain, queue limit 20, one Oban instance with the "
        "Powertools runtime, timed from the enqueue to the last completion; callback "
        "latency from the last job's return (worker clock) to the callback job's insert "
        "(committed in the ack that finished the batch) and start. Chain: "
        f"{args.links:,} links over {args.keys} keys against {args.links:,} plain jobs, queue "
        f"limit {args.keys}. {args.rounds} alternating rounds, a fresh database each.\n\n"
        + table(["measure", "result", "all rounds"], rows)
    )
    write_section(args.section, "Chains and batches: cost over plain jobs, callback latency", body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-jobs", type=int, default=10_000)
    parser.add_argument("--links", type=int, default=1_000)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--section", default="batches")
    asyncio.run(main(parser.parse_args()))
