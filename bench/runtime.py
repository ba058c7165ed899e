"""The Powertools runtime inside oban against bare oban, and the scheduler at 10k entries.

    python -m bench.runtime [--jobs 20000] [--rounds 2] [--entries 10000]
                            [--only throughput|scheduler]

1. Throughput: N no-op jobs are inserted (one statement), then an Oban instance with one
   queue (limit 20) is started and the time until every job has completed is measured.
   "bare" is plain oban; "powertools" is ``Oban(..., **powertools.oban_options())`` with
   Powertools' cron scheduler over 200 entries and persisted queue decisions (20 rows,
   one for the benchmark queue). Each side runs in a fresh database; the two alternate for
   ``--rounds`` rounds (which goes first alternates too); the headline is the median of
   the rounds' ratios (each round's two runs are back to back), the best rounds are shown
   beside it. Target: >= 0.95x bare.
2. Scheduler: 10,000 entries (mixed expressions and time zones), evaluated with an explicit
   ``now`` by ``CronScheduler.evaluate``: cold (nothing cached) on a quiet minute, warm on
   the next quiet minute, warm at the top of the hour (a third of the entries due), and a
   stress case where every entry is due. Target: < 1 s. Each evaluation's CPU is shown
   beside its wall time: this process's and the database backends' (read from /proc,
   so only for a server on this machine), which a loaded machine moves much less.

Results go to the ``runtime`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from oban import Job, Oban, worker
from oban.worker import worker_name
from psycopg_pool import AsyncConnectionPool

from bench.actions import BenchAuth, PlainDisplay
from bench.common import machine, scratch_database
from bench.report import table, write_section
from oban_powertools import Config, Powertools
from oban_powertools.db import Database, migrate
from oban_powertools.runtime import Runtime
from oban_powertools.runtime.scheduler import CronScheduler

QUEUE = "bench_runtime"
LIMIT = 20


@worker(queue=QUEUE)
class Noop:
    async def process(self, job: Job) -> None:
        return None


INSERT_JOBS = """
INSERT INTO oban_jobs (worker, queue, args, state, scheduled_at)
SELECT %(worker)s, %(queue)s, jsonb_build_object('n', g), 'available', timezone('UTC', now())
FROM generate_series(1, %(n)s) AS g
"""

# 200 runtime entries on other queues: most minutes a few of them fire, as in production.
INSERT_ENTRIES = """
INSERT INTO powertools_cron_entries (name, source, worker, queue, expression, timezone,
                                     overlap_policy)
SELECT 'entry_' || g, 'runtime', 'app.workers.Cron' || (g %% 20), 'cron_' || (g %% 10),
       CASE WHEN g %% 50 = 0 THEN '* * * * *' ELSE (g %% 60) || ' * * * *' END,
       (ARRAY['Etc/UTC', 'Europe/Berlin', 'America/Chicago'])[1 + g %% 3],
       (ARRAY['allow', 'skip', 'queue_one'])[1 + g %% 3]
FROM generate_series(1, %(entries)s) AS g
"""

INSERT_QUEUE_STATES = """
INSERT INTO powertools_queue_states (queue, paused, limit_override, changed_by_id, reason)
SELECT CASE WHEN g = 1 THEN %(queue)s ELSE 'other_' || g END, false,
       CASE WHEN g = 1 THEN %(limit)s END, 'bench', 'benchmark decision'
FROM generate_series(1, 20) AS g
"""

REMAINING = "SELECT count(*) FROM oban_jobs WHERE queue = %(queue)s AND state <> 'completed'"


async def throughput(jobs: int, with_powertools: bool) -> float:
    """Seconds from starting oban until all ``jobs`` have completed."""
    with scratch_database("bench_rt") as url:
        await migrate.apply(url)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as raw:
            await raw.execute(
                INSERT_JOBS,
                {"worker": worker_name(Noop), "queue": QUEUE, "n": jobs},
            )
            if with_powertools:
                await raw.execute(INSERT_ENTRIES, {"entries": 200})
                await raw.execute(INSERT_QUEUE_STATES, {"queue": QUEUE, "limit": LIMIT})
            await raw.execute("VACUUM ANALYZE")
            pool = AsyncConnectionPool(url, min_size=2, max_size=10, open=False)
            pt = Powertools(Config(database_url=url, auth=BenchAuth(), display=PlainDisplay()))
            options = {}
            if with_powertools:
                runtime = Runtime(pt, declarations=[], import_oban_cron=False)
                options = runtime.oban_options()
            await pool.open()
            oban = Oban(pool=pool, node="bench", queues={QUEUE: LIMIT}, **options)
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


class Leader:
    is_leader = True


SCHEDULER_ENTRIES = """
INSERT INTO powertools_cron_entries (name, source, worker, queue, expression, timezone,
                                     overlap_policy, catch_up_policy, evaluated_through)
SELECT 'entry_' || g, 'runtime', 'app.workers.Cron' || (g %% 200), 'cron_' || (g %% 20),
       CASE g %% 5 WHEN 0 THEN (g %% 60) || ' * * * *'
                   WHEN 1 THEN (g %% 60) || ' ' || (g %% 24) || ' * * *'
                   WHEN 2 THEN '*/' || (2 + g %% 13) || ' * * * *'
                   WHEN 3 THEN (g %% 60) || ' 9-17 * * 1-5'
                   ELSE '@hourly' END,
       (ARRAY['Etc/UTC', 'Europe/Berlin', 'America/Chicago', 'Asia/Tokyo'])[1 + g %% 4],
       (ARRAY['allow', 'skip', 'queue_one', 'cancel_previous'])[1 + g %% 4],
       (ARRAY['none', 'latest', 'all'])[1 + g %% 3],
       %(through)s
FROM generate_series(1, %(entries)s) AS g
"""


BACKENDS = """
SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


def on_cpu(pid: int) -> int:
    """Nanoseconds a local process has run (0 where /proc does not say)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


# (wall seconds, examined, enqueued, client CPU seconds, server CPU seconds)
type Timed = tuple[float, int, int, float, float]


async def timed(
    sched: CronScheduler, monitor: psycopg.AsyncConnection[Any], now: datetime
) -> Timed:
    """One evaluation with the CPU it cost: this process's and that of the database's
    backends (a local server's /proc). On a shared machine wall time moves with the load;
    the CPU the evaluation costs much less."""

    async def backends() -> list[int]:
        cur = await monitor.execute(BACKENDS)
        return [int(row[0]) for row in await cur.fetchall()]

    before = {pid: on_cpu(pid) for pid in await backends()}
    client = time.process_time()
    ev = await sched.evaluate(now=now)
    client = time.process_time() - client
    server = sum(on_cpu(pid) - before.get(pid, 0) for pid in await backends()) / 1e9
    return ev.seconds, ev.examined, ev.enqueued, client, server


async def scheduler(entries: int) -> dict[str, Timed]:
    """Wall time, entries, jobs and CPU of a cold, a warm and an all-due evaluation."""
    t0 = datetime(2031, 1, 6, 10, 0, tzinfo=UTC)  # a Monday
    minute = timedelta(minutes=1)
    out: dict[str, Timed] = {}
    with scratch_database("bench_sched") as url:
        await migrate.apply(url)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as raw:
            await raw.execute(SCHEDULER_ENTRIES, {"entries": entries, "through": t0})
            await raw.execute("VACUUM ANALYZE")
            async with Database(url) as db:
                sched = CronScheduler(db, leader=Leader(), node="bench")
                # Every minute from 10:01 to 11:00, as the leader's loop would run them.
                runs = [await timed(sched, raw, t0 + m * minute) for m in range(1, 61)]
                cold, quiet, top = runs[0], sorted(runs[1:-1]), runs[-1]
                out["cold, 10:01 (nothing cached)"] = cold
                out["warm, median of 10:02-10:59"] = quiet[len(quiet) // 2]
                out["warm, slowest of 10:02-10:59"] = quiet[-1]
                out["warm, top of the hour (11:00)"] = top
                await raw.execute("UPDATE powertools_cron_entries SET expression = '* * * * *'")
                out["stress: every entry due (11:01)"] = await timed(sched, raw, t0 + 61 * minute)
    return out


async def main(jobs: int, rounds: int, entries: int, section: str, only: str | None) -> None:
    print(f"# bench.runtime — {machine()}")
    rows: list[list[str]] = []
    parts: list[str] = []
    if only in (None, "throughput"):
        bare: list[float] = []
        ours: list[float] = []
        for n in range(rounds):
            # Which side goes first alternates: a machine that slows down (or warms up)
            # over a run would otherwise always favour the same side.
            if n % 2 == 0:
                bare.append(await throughput(jobs, False))
                ours.append(await throughput(jobs, True))
            else:
                ours.append(await throughput(jobs, True))
                bare.append(await throughput(jobs, False))
            print(f"bare {jobs / bare[-1]:8.0f} jobs/s   powertools {jobs / ours[-1]:8.0f} jobs/s")
        bare_rate, our_rate = jobs / min(bare), jobs / min(ours)
        ratio = our_rate / bare_rate
        # Each round's two runs are back to back: the ratio within a round cancels the
        # machine's slower and faster stretches, which the rounds' spread shows are large.
        round_ratios = [b / o for b, o in zip(bare, ours, strict=True)]
        median_ratio = statistics.median(round_ratios)
        print(
            f"throughput ratio powertools/bare: median of the rounds' ratios "
            f"{median_ratio:.2f}x ({', '.join(f'{r:.2f}' for r in round_ratios)}), best rounds "
            f"{ratio:.2f}x  (target >= 0.95x)"
        )
        rows += [
            [
                f"{jobs:,} no-op jobs, bare oban",
                f"{bare_rate:,.0f} jobs/s",
                ", ".join(f"{jobs / b:,.0f}" for b in bare),
                "",
            ],
            [
                f"{jobs:,} no-op jobs, with the Powertools runtime",
                f"{our_rate:,.0f} jobs/s",
                ", ".join(f"{jobs / o:,.0f}" for o in ours),
                "",
            ],
            [
                "throughput ratio (median of the rounds' ratios)",
                f"{median_ratio:.2f}x",
                ", ".join(f"{r:.2f}" for r in round_ratios),
                "yes" if median_ratio >= 0.95 else "**no**",
            ],
            [
                "throughput ratio (best rounds)",
                f"{ratio:.2f}x",
                "",
                "yes" if ratio >= 0.95 else "**no**",
            ],
        ]
        parts.append(
            f"Queue limit {LIMIT}; {rounds} alternating rounds per side, each in a fresh "
            "database; the powertools side runs the cron scheduler over 200 entries and applies "
            "20 persisted queue decisions."
        )
    evals: dict[str, Timed] = {}
    if only in (None, "scheduler"):
        evals = await scheduler(entries)
        for label, (seconds, _examined, enqueued, client, server) in evals.items():
            print(
                f"scheduler {entries} entries, {label}: {seconds * 1000:.0f} ms, "
                f"{enqueued} enqueued, CPU {client * 1000:.0f} ms client + "
                f"{server * 1000:.0f} ms server"
            )
    for label, (seconds, examined, enqueued, client, server) in evals.items():
        rows.append(
            [
                f"scheduler, {examined:,} entries, {label}",
                f"{seconds * 1000:.0f} ms",
                f"{enqueued:,} jobs enqueued; CPU {client * 1000:.0f} ms client + "
                f"{server * 1000:.0f} ms server",
                "yes" if seconds < 1.0 else "**no**",
            ]
        )
    targets = {
        None: "Targets: throughput >= 0.95x bare, 10,000 entries evaluated in < 1 s.",
        "throughput": "Target: throughput >= 0.95x bare.",
        "scheduler": "Target: 10,000 entries evaluated in < 1 s.",
    }
    parts.append(targets[only])
    body = (
        " ".join(parts) + "\n\n" + table(["measure", "result", "all rounds / detail", "met"], rows)
    )
    write_section(section, "Runtime: throughput and the cron scheduler", body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--section", default="runtime", help="RESULTS.md section to (re)write")
    parser.add_argument(
        "--only", choices=("throughput", "scheduler"), help="run one part of the benchmark"
    )
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.rounds, args.entries, args.section, args.only))
