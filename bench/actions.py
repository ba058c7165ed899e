"""Audited actions against their bare equivalents, in one run.

    python -m bench.actions [--rounds 200] [--bulk 100000]

1. One audited ``pause_cron_entry`` (preview + execute through the pipeline) against a bare
   transaction doing the same UPDATE and an audit-shaped INSERT. Target: <= 2x.
2. An audited bulk retry of N discarded jobs against oban's ``retry_many_jobs`` on a set of
   the same size. Target: <= 1.5x.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import psycopg
from oban import Oban

from bench.common import Stopwatch, Timing, machine, ms, scratch_database
from oban_powertools import Config, Powertools, Principal, Resource
from oban_powertools.cron.entries import CronEntrySpec, upsert_entry
from oban_powertools.db import migrate


class BenchAuth:
    def current_actor(self, request: Any) -> str:
        return "bench"

    def authorize(self, actor: Any, action: str, resource: Resource) -> bool:
        return True

    def audit_principal(self, actor: Any) -> Principal:
        return Principal("bench", "user", "Bench Operator")


class PlainDisplay:
    def display(self, kind: str, value: Any, context: Any) -> str | None:
        return None


BARE_PAUSE = """
UPDATE powertools_cron_entries SET paused = true, paused_at = now(), paused_by_id = 'bench',
       paused_reason = 'bench', version = version + 1 WHERE name = %(name)s
"""
BARE_RESUME = (
    "UPDATE powertools_cron_entries SET paused = false, paused_at = NULL WHERE name = %(name)s"
)
BARE_AUDIT = """
INSERT INTO powertools_audit_events (action, command, resource_type, resource_id, principal_id,
    principal_type, principal_label, reason, surface, outcome, before, after)
VALUES ('cron.paused', 'pause_cron_entry', 'cron_entry', %(name)s, 'bench', 'user', 'Bench',
        'bench', 'api', 'succeeded', '{}', '{}')
"""

DISCARD_SET = """
INSERT INTO oban_jobs (worker, queue, state, attempt, max_attempts, discarded_at, attempted_at)
SELECT 'app.Worker', 'default', 'discarded', 3, 3, timezone('UTC', now()), timezone('UTC', now())
FROM generate_series(1, %(n)s)
RETURNING id
"""


async def single_actions(pt: Powertools, url: str, rounds: int) -> tuple[Timing, Timing]:
    async with pt.db.transaction() as conn:
        await upsert_entry(
            conn, CronEntrySpec(name="bench_entry", worker="app.W", expression="* * * * *")
        )
    audited, bare = [], []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as raw:
        for _ in range(rounds):
            # Interleave the two so drift in the machine's load hits both alike.
            watch = Stopwatch()
            await pt.operator.pause_cron_entry("bench", "bench_entry", reason="benchmark run")
            audited.append(watch())
            await pt.operator.resume_cron_entry("bench", "bench_entry")

            watch = Stopwatch()
            async with raw.transaction():
                await raw.execute(BARE_PAUSE, {"name": "bench_entry"})
                await raw.execute(BARE_AUDIT, {"name": "bench_entry"})
            bare.append(watch())
            await raw.execute(BARE_RESUME, {"name": "bench_entry"})
    return Timing("audited pause_cron_entry", audited), Timing("bare UPDATE+INSERT", bare)


async def bulk_retry(pt: Powertools, url: str, n: int) -> tuple[float, float]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as raw:
        ours = [r[0] for r in await (await raw.execute(DISCARD_SET, {"n": n})).fetchall()]
        theirs = [r[0] for r in await (await raw.execute(DISCARD_SET, {"n": n})).fetchall()]
        await raw.execute("ANALYZE oban_jobs")
    pool = await Oban.create_pool(url, min_size=1, max_size=2)
    try:
        oban = Oban(pool=pool, node="bench")
        watch = Stopwatch()
        await oban.retry_many_jobs(theirs)
        oban_ms = watch()
    finally:
        await pool.close()
    watch = Stopwatch()
    preview = await pt.pipeline.preview("bench", "retry_job", [str(i) for i in ours])
    await pt.pipeline.execute("bench", preview.token, "bulk retry benchmark")
    ours_ms = watch()
    return ours_ms, oban_ms


async def main(rounds: int, bulk: int) -> None:
    with scratch_database() as url:
        await migrate.apply(url)
        pt = Powertools(Config(database_url=url, auth=BenchAuth(), display=PlainDisplay()))
        async with pt:
            audited, bare = await single_actions(pt, url, rounds)
            ours_ms, oban_ms = await bulk_retry(pt, url, bulk)
    print(f"# bench.actions — {machine()}")
    for t in (audited, bare):
        print(f"{t.label:<28} p50 {ms(t.p50)}  p95 {ms(t.p95)}  (n={len(t.samples)})")
    print(f"ratio audited/bare (p50): {audited.p50 / bare.p50:.2f}x  (target <= 2x)")
    print(f"audited bulk retry of {bulk} jobs: {ms(ours_ms)}")
    print(f"oban retry_many_jobs of {bulk} jobs: {ms(oban_ms)}")
    print(f"ratio audited/oban: {ours_ms / oban_ms:.2f}x  (target <= 1.5x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--bulk", type=int, default=100_000)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.bulk))
