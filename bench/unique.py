"""Unique enqueue against plain enqueue, in one run.

    python -m bench.unique [--batch 10000] [--rounds 5] [--singles 300]

1. ``enqueue_many`` of N unique jobs (distinct keys) against N plain jobs (oban's own
   insert), alternating which side goes first, each round into emptied tables. Target:
   unique <= 1.5x plain.
2. One unique ``enqueue`` against one plain ``enqueue``, interleaved. Target: <= 1.3x.

Both sides run through the same Oban instance and pool with the Powertools hooks
installed: a batch without unique jobs is oban's own insert (the hook passes it on).
Postgres durability is on (the private 'bench' cluster), so every commit is flushed.
Results go to the ``unique`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from typing import Any

import psycopg
from oban import Oban, worker
from psycopg_pool import AsyncConnectionPool

from bench.common import Stopwatch, Timing, machine, ms, scratch_database
from bench.report import table, write_section
from oban_powertools.db import migrate
from oban_powertools.runtime.instance import install_hooks


@worker(queue="bench")
class Work:
    async def process(self, job: Any) -> None:
        return None


async def _truncate(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("TRUNCATE oban_jobs")


async def batches(oban: Oban, url: str, size: int, rounds: int) -> list[dict[str, float]]:
    runs = []
    for r in range(rounds):
        timings: dict[str, float] = {}
        order = ("unique", "plain") if r % 2 == 0 else ("plain", "unique")
        for side in order:
            await _truncate(url)
            unique = {"period": 300, "keys": ["n"]} if side == "unique" else None
            jobs = [Work.new({"n": i, "round": r}, unique=unique) for i in range(size)]
            watch = Stopwatch()
            inserted = await oban.enqueue_many(jobs)
            timings[side] = watch()
            assert len({j.id for j in inserted}) == size
        runs.append(timings)
    return runs


async def singles(oban: Oban, url: str, count: int) -> dict[str, Timing]:
    await _truncate(url)
    unique_ms: list[float] = []
    plain_ms: list[float] = []
    for i in range(count):
        for side in ("unique", "plain") if i % 2 == 0 else ("plain", "unique"):
            unique = {"period": 300, "keys": ["n"]} if side == "unique" else None
            job = Work.new({"n": i, "side": side}, unique=unique)
            watch = Stopwatch()
            await oban.enqueue(job)
            (unique_ms if side == "unique" else plain_ms).append(watch())
    return {
        "unique": Timing("unique enqueue", unique_ms),
        "plain": Timing("plain enqueue", plain_ms),
    }


async def main(size: int, rounds: int, count: int, section: str) -> None:
    with scratch_database() as url:
        await migrate.apply(url)
        install_hooks()
        async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
            oban = Oban(pool=pool, node="bench-unique", queues={})
            runs = await batches(oban, url, size, rounds)
            one = await singles(oban, url, count)
        server = url.rsplit("/", 1)[0] + "/postgres"
    batch_ratio = statistics.median(run["unique"] / run["plain"] for run in runs)
    single_ratio = one["unique"].p50 / one["plain"].p50
    print(f"# bench.unique — {machine()}")
    for side in ("unique", "plain"):
        every = ", ".join(f"{run[side]:.0f}" for run in runs)
        print(f"enqueue_many {size} {side:<6} rounds (ms): {every}")
    print(f"batch ratio unique/plain (median of rounds): {batch_ratio:.2f}x")
    for t in one.values():
        print(f"{t.label:<16} p50 {ms(t.p50)}  p95 {ms(t.p95)}  (n={len(t.samples)})")
    print(f"single ratio unique/plain (p50): {single_ratio:.2f}x")

    def met(ratio: float, target: float) -> str:
        return "yes" if ratio <= target else "**no**"

    rows = [
        [
            f"`enqueue_many` of {size:,} {side} jobs (rounds: "
            + ", ".join(f"{run[side]:.0f}" for run in runs)
            + ")",
            f"{statistics.median(run[side] for run in runs):.0f}",
            "",
            "",
            "",
        ]
        for side in ("unique", "plain")
    ]
    rows.append(
        ["batch: unique / plain (median of the rounds' ratios)", "", "", f"{batch_ratio:.2f}x",
         met(batch_ratio, 1.5)]
    )  # fmt: skip
    rows += [[f"single: {t.label}", f"{t.p50:.2f}", f"{t.p95:.2f}", "", ""] for t in one.values()]
    rows.append(
        ["single: unique / plain (p50)", "", "", f"{single_ratio:.2f}x", met(single_ratio, 1.3)]
    )
    body = (
        f"{rounds} rounds of `enqueue_many` ({size:,} jobs a side, which side goes first "
        f"alternates); {count} single inserts a side, interleaved. Unique jobs have distinct "
        "keys (no conflicts), `period` 300 s. Plain jobs go through oban's own insert (one "
        "statement per job); a batch holding unique jobs is one statement (expire, then "
        "`INSERT ... ON CONFLICT`). Targets: batch <= 1.5x plain, single <= 1.3x.\n\n"
        + table(["measure", "p50 / median (ms)", "p95 (ms)", "ratio", "met"], rows)
    )
    write_section(section, "Unique enqueue against plain enqueue", body, server)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--singles", type=int, default=300)
    parser.add_argument("--section", default="unique")
    args = parser.parse_args()
    asyncio.run(main(args.batch, args.rounds, args.singles, args.section))
