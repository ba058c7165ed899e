"""The Prometheus scrape (``/ops/jobs/metrics``) at 100k, 1M and 10M jobs, beside the naive
exporter's query.

    python -m bench.metrics [--sizes 100000,1000000,10000000] [--rounds 30] [--naive-rounds 5]
                            [--keep] [--section NAME]

For each size a database is seeded (bench.seed: 20 queues, 200 cron entries with slot
history, 100k audit events) and the ASGI app is scraped in-process through httpx's
ASGITransport with a permissive auth seam: the wall time of each scrape (auth seam, the
read model's statements, exposition) is one sample. Beside it, a naive exporter's
``count(*) GROUP BY queue, state`` runs on its own connection in the same run.
``--keep`` keeps the seeded databases (seeding 10M jobs takes many minutes).

Target: p95 <= 50 ms at 10M jobs.
"""

from __future__ import annotations

import argparse
import asyncio

import httpx
import psycopg

from bench.actions import BenchAuth, PlainDisplay
from bench.common import Stopwatch, Timing, machine, ms, seeded_database
from bench.report import table, write_section
from oban_powertools import Config, Powertools

TARGET_P95_MS = 50.0
NAIVE = "SELECT queue, state, count(*) FROM oban_jobs GROUP BY queue, state"


async def prepare(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        # The seed's producers are static rows: make them look alive, as a running node would.
        await conn.execute("UPDATE oban_producers SET updated_at = timezone('UTC', now())")
        cur = await conn.execute(
            "SELECT relallvisible < relpages / 2 FROM pg_class WHERE oid = 'oban_jobs'::regclass"
        )
        if (await cur.fetchone() or [False])[0]:
            await conn.execute("VACUUM ANALYZE oban_jobs")


async def measure_size(
    jobs: int, rounds: int, naive_rounds: int, keep: bool
) -> tuple[Timing, Timing, int, str]:
    async with seeded_database(jobs, keep=keep) as url:
        await prepare(url)
        pt = Powertools(Config(database_url=url, auth=BenchAuth(), display=PlainDisplay()))
        samples: list[float] = []
        size = 0
        async with pt:
            transport = httpx.ASGITransport(app=pt.asgi_app())
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                for _ in range(3):
                    (await client.get("/metrics")).raise_for_status()
                for _ in range(rounds):
                    watch = Stopwatch()
                    response = await client.get("/metrics")
                    samples.append(watch())
                    response.raise_for_status()
                    size = len(response.content)
        naive: list[float] = []
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as raw:
            for _ in range(naive_rounds):
                watch = Stopwatch()
                cur = await raw.execute(NAIVE)
                await cur.fetchall()
                naive.append(watch())
        return (
            Timing("scrape", samples),
            Timing("naive GROUP BY", naive),
            size,
            url,
        )


async def main(sizes: list[int], rounds: int, naive_rounds: int, keep: bool, section: str) -> None:
    print(f"# bench.metrics — {machine()}")
    rows = []
    url = ""
    for n in sizes:
        ours, naive, size, url = await measure_size(n, rounds, naive_rounds, keep)
        print(
            f"{n:>12,} jobs: scrape p50 {ms(ours.p50)} p95 {ms(ours.p95)} ({size:,} bytes)   "
            f"naive p50 {ms(naive.p50)} p95 {ms(naive.p95)}"
        )
        met = "yes" if ours.p95 <= TARGET_P95_MS else "**no**"
        rows.append(
            [
                f"{n:,}",
                f"{ours.p50:.1f} / {ours.p95:.1f}",
                f"{naive.p50:.1f} / {naive.p95:.1f}",
                f"{naive.p50 / ours.p50:.0f}x",
                f"{size:,}",
                met,
            ]
        )
    body = "\n".join(
        [
            f"{rounds} scrapes of `/metrics` per size (p50 / p95 ms, the whole request "
            f"in-process), {naive_rounds} runs of the naive exporter's `{NAIVE}`. "
            f"Target: p95 <= {TARGET_P95_MS:.0f} ms at the largest size.",
            "",
            table(
                [
                    "jobs",
                    "scrape p50/p95",
                    "naive p50/p95",
                    "naive/ours p50",
                    "exposition bytes",
                    "met",
                ],
                rows,
            ),
        ]
    )
    print()
    print(body)
    server = url.rsplit("/", 1)[0] + "/postgres" if url else None
    write_section(
        section, f"Metrics scrape ({', '.join(f'{n:,}' for n in sizes)} jobs)", body, server
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--naive-rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep seeded databases for reuse")
    parser.add_argument("--section", default="metrics", help="RESULTS.md section to (re)write")
    args = parser.parse_args()
    asyncio.run(
        main(
            [int(s) for s in args.sizes.split(",") if s],
            args.rounds,
            args.naive_rounds,
            args.keep,
            args.section,
        )
    )
