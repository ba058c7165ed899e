"""The job rollup's own cost at 100k, 1M and 10M jobs: one minute's pass, and a day's catch-up.

    python -m bench.rollups [--sizes 100000,1000000,10000000] [--rounds 20] [--keep]
                            [--section rollups]

For each size a database is seeded (bench.seed: 20 jobs a second up to the moment of
seeding, so the last minutes hold the same traffic at every size) and:

* **catch-up**: the rollup is reset and one pass after a day without a leader writes the
  1,440 minutes before the last seeded job (24 transactions of an hour): what a leader
  does after downtime, and what fills the rows the page benchmark draws;
* **charts**: what a page's charts read (``read_models.rollups.activity``: the progress row
  and the rollup rows of the last hour or day, for every queue or one), timed alone over
  ``rounds`` runs each, the day of rows the catch-up wrote in view;
* **one minute**: the minute a steady-state pass writes, a few seconds after it closed
  (``aggregate`` over the minute before the last seeded job, ``now`` 5 s past it), timed
  over ``rounds`` runs, each recomputing and overwriting the same rows.

Target: one minute's pass flat from 100k to 10M jobs (p95 ratio <= 2), well under a second.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from typing import LiteralString

import psycopg

from bench.common import Stopwatch, Timing, machine, ms, seeded_database
from bench.report import table, write_section
from oban_powertools.db import Database
from oban_powertools.read_models import rollups
from oban_powertools.runtime.rollup import JobRollup, aggregate

MINUTE = timedelta(minutes=1)
TARGET_GROWTH = 2.0

LAST_SEEDED: LiteralString = (
    "SELECT max(greatest(completed_at, discarded_at, cancelled_at, attempted_at)) FROM oban_jobs "
    "WHERE id > (SELECT max(id) - 1000 FROM oban_jobs)"
)
RESET_PROGRESS: LiteralString = "UPDATE powertools_job_rollup_progress SET written_through = %s"
RESET_ROWS: LiteralString = "DELETE FROM powertools_job_rollups"


class Leader:
    is_leader = True


async def last_seeded(url: str) -> datetime:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(LAST_SEEDED)
        row = await cur.fetchone()
    assert row and row[0], "no seeded jobs"
    return row[0].replace(tzinfo=UTC)


async def fill(url: str) -> tuple[float, int, datetime]:
    """A day's catch-up ending at the last seeded job; (ms, minutes written, that end)."""
    end = (await last_seeded(url)).replace(second=0, microsecond=0) + MINUTE
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(RESET_PROGRESS, ((end - timedelta(days=2)).replace(tzinfo=None),))
        await conn.execute(RESET_ROWS)
    async with Database(url, "public", max_size=2) as db:
        rollup = JobRollup(db, leader=Leader(), node="bench")
        watch = Stopwatch()
        done = await rollup.run_pass(end + timedelta(seconds=5))
        return watch(), done.minutes, end


async def one_minute(url: str, end: datetime, rounds: int) -> Timing:
    minute = end - MINUTE
    samples = []
    async with Database(url, "public", max_size=2) as db:
        for _ in range(rounds):
            watch = Stopwatch()
            async with db.transaction() as conn:
                await aggregate(conn, minute, end, now=end + timedelta(seconds=5))
            samples.append(watch())
    return Timing("one minute", samples)


CHARTS: list[tuple[str, rollups.Window, str | None]] = [
    ("hour, all queues", "hour", None),
    ("day, all queues", "day", None),
    ("hour, queue_7", "hour", "queue_7"),
    ("day, queue_7", "day", "queue_7"),
]


async def charts(url: str, end: datetime, rounds: int) -> dict[str, Timing]:
    found: dict[str, list[float]] = {label: [] for label, _, _ in CHARTS}
    async with Database(url, "public", max_size=2) as db:
        async with db.connection() as conn:
            for _ in range(rounds):
                for label, window, queue in CHARTS:
                    watch = Stopwatch()
                    await rollups.activity(conn, window, queue=queue, now=end)
                    found[label].append(watch())
    return {label: Timing(label, samples) for label, samples in found.items()}


async def main(sizes: list[int], rounds: int, keep: bool, section: str) -> None:
    print(f"# bench.rollups — {machine()}")
    rows = []
    minutes: dict[int, Timing] = {}
    reads: dict[int, dict[str, Timing]] = {}
    server: str | None = None
    for n in sizes:
        async with seeded_database(n, keep=keep) as url:
            catch_up, written, end = await fill(url)
            minutes[n] = await one_minute(url, end, rounds)
            reads[n] = await charts(url, end, rounds)
            server = url.rsplit("/", 1)[0] + "/postgres"
        t = minutes[n]
        print(f"{n:>12,} jobs: catch-up of {written} minutes {ms(catch_up)}; one minute "
              f"p50 {ms(t.p50)} p95 {ms(t.p95)}")  # fmt: skip
        rows.append(
            [f"{n:,}", f"{catch_up:,.0f} ms ({written} minutes)", f"{t.p50:.1f} / {t.p95:.1f}"]
        )
    chart_rows = [
        [label] + [f"{reads[n][label].p50:.2f} / {reads[n][label].p95:.2f}" for n in sizes]
        for label, _, _ in CHARTS
    ]
    growth = minutes[sizes[-1]].p95 / minutes[sizes[0]].p95
    body = "\n".join(
        [
            f"{rounds} runs of one minute's pass per size (p50 / p95 ms, its transaction "
            "included); one day's catch-up per size, once.",
            "",
            table(["jobs", "catch-up, a day after downtime", "one minute p50 / p95"], rows),
            "",
            f"One minute's pass, growth p95 {sizes[-1]:,}/{sizes[0]:,}: {growth:.2f} "
            f"(target <= {TARGET_GROWTH:.0f}): {'met' if growth <= TARGET_GROWTH else '**not met**'}.",
            "",
            "What the charts read (the read model alone, p50 / p95 ms):",
            "",
            table(["charts"] + [f"@{n:,}" for n in sizes], chart_rows),
        ]
    )
    print()
    print(body)
    write_section(section, f"Job rollup ({', '.join(f'{n:,}' for n in sizes)} jobs)", body, server)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep seeded databases for reuse")
    parser.add_argument("--section", default="rollups", help="RESULTS.md section to (re)write")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    asyncio.run(main(sizes, args.rounds, args.keep, args.section))
