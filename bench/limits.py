"""Queue limiters: the cost of limits that do not bind, and the cost of a fetch at 1M jobs.

    python -m bench.limits [--jobs 10000] [--rounds 5] [--available 1000000]
                           [--partitions 100,10000] [--fetches 200] [--only throughput|fetch]

1. Throughput: N no-op jobs are inserted, an Oban instance with the Powertools runtime and
   one queue (limit 20) is started, and the time until every job has completed is
   measured. "limited" declares ``global_limit`` 10,000 and ``rate_limit`` 10,000,000 per
   60 s (neither can bind: every fetch goes through the limiter's transaction, records
   its starts and finds room); "plain" is the same queue without them (oban's own fetch).
   Fresh database per run; the sides alternate (and which goes first alternates); the
   headline is the median of the rounds' ratios. Target: >= 0.9x.
2. Fetch cost: a partitioned queue (``global_limit`` 5 and ``rate_limit`` 1,000 per 60 s,
   per ``args.customer_id``) with 1,000,000 available jobs spread over P partitions; one
   limited fetch (the limiter's whole transaction: lock, use, partition walk, claim,
   commit) of demand 10, timed ``--fetches`` times after a warm-up. After each fetch the
   claimed jobs are made available again (untimed), so every fetch sees the same 1M
   jobs while the round-robin turn moves on as in production. Target: the median at
   10,000 partitions <= 2x the median at 100.

Results go to the ``limits`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import psycopg
from oban import Job, Oban, worker
from oban.worker import worker_name
from psycopg_pool import AsyncConnectionPool

from bench.actions import BenchAuth, PlainDisplay
from bench.common import Timing, machine, scratch_database
from bench.report import table, write_section
from oban_powertools import Config, Powertools
from oban_powertools.db import Database, migrate
from oban_powertools.limits.options import parse_queue_limits
from oban_powertools.limits.store import declare
from oban_powertools.runtime import Runtime
from oban_powertools.runtime.limiter import FetchRequest, Limiter

QUEUE = "bench_limits"
LIMIT = 20
NOT_BINDING = {"global_limit": 10_000, "rate_limit": {"allowed": 10_000_000, "period": 60}}
BY_CUSTOMER = {"fields": ["args"], "keys": ["customer_id"]}
PARTITIONED = {
    "global_limit": {"allowed": 5, "partition": BY_CUSTOMER},
    "rate_limit": {"allowed": 1_000, "period": 60, "partition": BY_CUSTOMER},
}
DEMAND = 10


@worker(queue=QUEUE)
class Noop:
    async def process(self, job: Job) -> None:
        return None


INSERT_JOBS = """
INSERT INTO oban_jobs (worker, queue, args, state, scheduled_at)
SELECT %(worker)s, %(queue)s,
       jsonb_build_object('customer_id', 'c' || (g %% %(partitions)s), 'n', g),
       'available', timezone('UTC', now())
FROM generate_series(1, %(n)s) AS g
"""

REMAINING = "SELECT count(*) FROM oban_jobs WHERE queue = %(queue)s AND state <> 'completed'"

# Untimed, between fetches: what a fetch claimed is available again.
RELEASE = (
    "UPDATE oban_jobs SET state = 'available', attempt = 0, attempted_at = NULL, "
    "attempted_by = '{}' WHERE queue = %(queue)s AND state = 'executing'"
)


def powertools(url: str) -> Powertools:
    return Powertools(Config(database_url=url, auth=BenchAuth(), display=PlainDisplay()))


async def throughput(jobs: int, limited: bool) -> float:
    """Seconds from starting oban until all ``jobs`` have completed."""
    with scratch_database("bench_lim") as url:
        await migrate.apply(url)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as raw:
            await raw.execute(
                INSERT_JOBS,
                {"worker": worker_name(Noop), "queue": QUEUE, "n": jobs, "partitions": 1},
            )
            await raw.execute("VACUUM ANALYZE")
            pool = AsyncConnectionPool(url, min_size=2, max_size=10, open=False)
            runtime = Runtime(powertools(url), declarations=[], import_oban_cron=False)
            options: dict[str, Any] = {"limit": LIMIT, **(NOT_BINDING if limited else {})}
            await pool.open()
            oban = Oban(pool=pool, node="bench", queues={QUEUE: options}, **runtime.oban_options())
            started = time.perf_counter()
            await oban.start()
            try:
                while True:
                    await asyncio.sleep(0.05)
                    row = await (await raw.execute(REMAINING, {"queue": QUEUE})).fetchone()
                    if row is not None and row[0] == 0:
                        break
                elapsed = time.perf_counter() - started
            finally:
                await oban.stop()
                await pool.close()
    return elapsed


async def fetch_cost(available: int, partitions: int, fetches: int) -> tuple[Timing, float]:
    """The limited fetch's time over ``available`` jobs in ``partitions`` partitions, and
    the seconds seeding took."""
    with scratch_database("bench_fetch") as url:
        await migrate.apply(url)
        seeding = time.perf_counter()
        async with Database(url) as db:
            # Declared before the insert: the trigger keys every row as it goes in.
            async with db.transaction() as conn:
                await declare(conn, QUEUE, parse_queue_limits(QUEUE, PARTITIONED), node="bench")
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as raw:
                await raw.execute(
                    INSERT_JOBS,
                    {
                        "worker": worker_name(Noop),
                        "queue": QUEUE,
                        "n": available,
                        "partitions": partitions,
                    },
                )
                await raw.execute("VACUUM ANALYZE")
                seeded = time.perf_counter() - seeding
                limiter = Limiter(db, declared=dict, node="bench")
                await limiter.refresh()
                request = FetchRequest(QUEUE, DEMAND, "bench", "bench-producer", lambda: None)
                samples: list[float] = []
                for n in range(fetches + 20):
                    began = time.perf_counter()
                    jobs = await limiter.fetch(request)
                    took = (time.perf_counter() - began) * 1000
                    if len(jobs) != DEMAND:
                        raise RuntimeError(f"a fetch claimed {len(jobs)} jobs, not {DEMAND}")
                    if n >= 20:  # the first fetches warm the caches
                        samples.append(took)
                    await raw.execute(RELEASE, {"queue": QUEUE})
                await limiter.stop()
    return Timing(f"{partitions:,} partitions", samples), seeded


async def main(args: argparse.Namespace) -> None:
    print(f"# bench.limits — {machine()}")
    rows: list[list[str]] = []
    parts: list[str] = []
    if args.only in (None, "throughput"):
        plain: list[float] = []
        limited: list[float] = []
        for n in range(args.rounds):
            order = (False, True) if n % 2 == 0 else (True, False)
            for side in order:
                (limited if side else plain).append(await throughput(args.jobs, side))
            print(
                f"plain {args.jobs / plain[-1]:8.0f} jobs/s   "
                f"limited {args.jobs / limited[-1]:8.0f} jobs/s"
            )
        ratios = [p / lim for p, lim in zip(plain, limited, strict=True)]
        median_ratio = statistics.median(ratios)
        print(
            f"throughput limited/plain: median of the rounds' ratios {median_ratio:.2f}x "
            f"({', '.join(f'{r:.2f}' for r in ratios)})  (target >= 0.9x)"
        )
        rows += [
            [
                f"{args.jobs:,} no-op jobs, queue without limits",
                f"{args.jobs / statistics.median(plain):,.0f} jobs/s",
                ", ".join(f"{args.jobs / p:,.0f}" for p in plain),
                "",
            ],
            [
                f"{args.jobs:,} no-op jobs, limits that do not bind",
                f"{args.jobs / statistics.median(limited):,.0f} jobs/s",
                ", ".join(f"{args.jobs / x:,.0f}" for x in limited),
                "",
            ],
            [
                "throughput ratio limited/plain (median of the rounds' ratios)",
                f"{median_ratio:.2f}x",
                ", ".join(f"{r:.2f}" for r in ratios),
                "yes" if median_ratio >= 0.9 else "**no**",
            ],
        ]
        parts.append(
            f"Throughput: queue limit {LIMIT}, both sides with the Powertools runtime; "
            '"limits that do not bind" declares global_limit 10,000 and rate_limit '
            f"10,000,000/60 s; {args.rounds} alternating rounds, each run in a fresh database."
        )
    if args.only in (None, "fetch"):
        timings: list[Timing] = []
        for partitions in args.partitions:
            timing, seeded = await fetch_cost(args.available, partitions, args.fetches)
            timings.append(timing)
            print(
                f"fetch over {args.available:,} jobs in {timing.label}: p50 {timing.p50:.2f} ms, "
                f"p95 {timing.p95:.2f} ms (seeded in {seeded:.0f} s)"
            )
            rows.append(
                [
                    f"one limited fetch (demand {DEMAND}), {args.available:,} available jobs "
                    f"over {timing.label}",
                    f"p50 {timing.p50:.2f} ms",
                    f"p95 {timing.p95:.2f} ms, {len(timing.samples)} fetches",
                    "",
                ]
            )
        low, high = timings[0], timings[-1]
        ratio = high.p50 / low.p50
        print(f"fetch cost ratio {high.label} / {low.label}: {ratio:.2f}x  (target <= 2)")
        rows.append(
            [
                f"fetch cost ratio, {high.label} / {low.label} (p50)",
                f"{ratio:.2f}x",
                f"p95 ratio {high.p95 / low.p95:.2f}x",
                "yes" if ratio <= 2 else "**no**",
            ]
        )
        parts.append(
            "Fetch cost: a queue partitioned by args.customer_id with global_limit 5 and "
            "rate_limit 1,000/60 s per partition; each fetch is the limiter's whole "
            "transaction (fetch lock, use, partition walk, claim with starts recorded, "
            "commit); the claimed jobs are released between fetches (untimed)."
        )
    parts.append("Targets: throughput >= 0.9x the same queue without limits; fetch ratio <= 2.")
    body = (
        " ".join(parts) + "\n\n" + table(["measure", "result", "all rounds / detail", "met"], rows)
    )
    write_section(args.section, "Queue limiters: unbound limits and fetch cost", body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--available", type=int, default=1_000_000)
    parser.add_argument(
        "--partitions",
        type=lambda text: [int(p) for p in text.split(",")],
        default=[100, 10_000],
        help="partition counts to compare, fewest first",
    )
    parser.add_argument("--fetches", type=int, default=200)
    parser.add_argument("--section", default="limits", help="RESULTS.md section to (re)write")
    parser.add_argument("--only", choices=("throughput", "fetch"))
    asyncio.run(main(parser.parse_args()))
