"""Audited actions against their bare equivalents, in one run.

    python -m bench.actions [--rounds 200] [--bulk 100000]

1. One audited ``pause_cron_entry`` against a bare transaction doing the same UPDATE and an
   audit-shaped INSERT, as the confirm alone (execute: lock the preview, re-authorize,
   check drift, apply, audit, consume) and as preview + confirm. Target: <= 2x.
2. An audited bulk retry of N discarded jobs against oban's ``retry_many_jobs`` on a set of
   the same size, as the confirm alone and as preview + confirm. Target: <= 1.5x.

Each audited sample and its bare counterpart run back to back, so a slow moment of the
machine hits both. Results go to the ``actions`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from typing import Any

import psycopg
from oban import Oban

from bench.common import Stopwatch, Timing, machine, ms, scratch_database
from bench.report import table, write_section
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


async def single_actions(pt: Powertools, url: str, rounds: int) -> dict[str, Timing]:
    async with pt.db.transaction() as conn:
        await upsert_entry(
            conn, CronEntrySpec(name="bench_entry", worker="app.W", expression="* * * * *")
        )
    preview_ms, confirm_ms, total_ms, bare = [], [], [], []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as raw:
        for _ in range(rounds):
            watch = Stopwatch()
            preview = await pt.pipeline.preview("bench", "pause_cron_entry", "bench_entry")
            previewed = watch()
            await pt.pipeline.execute("bench", preview.token, "benchmark run")
            total = watch()
            preview_ms.append(previewed)
            confirm_ms.append(total - previewed)
            total_ms.append(total)
            await pt.operator.resume_cron_entry("bench", "bench_entry")

            watch = Stopwatch()
            async with raw.transaction():
                await raw.execute(BARE_PAUSE, {"name": "bench_entry"})
                await raw.execute(BARE_AUDIT, {"name": "bench_entry"})
            bare.append(watch())
            await raw.execute(BARE_RESUME, {"name": "bench_entry"})
    return {
        "preview": Timing("preview", preview_ms),
        "confirm": Timing("confirm (execute)", confirm_ms),
        "total": Timing("preview + confirm", total_ms),
        "bare": Timing("bare UPDATE+INSERT commit", bare),
    }


async def oban_retry(url: str, ids: list[int]) -> float:
    pool = await Oban.create_pool(url, min_size=1, max_size=2)
    try:
        oban = Oban(pool=pool, node="bench")
        watch = Stopwatch()
        await oban.retry_many_jobs(ids)
        return watch()
    finally:
        await pool.close()


async def audited_retry(pt: Powertools, ids: list[int]) -> dict[str, float]:
    watch = Stopwatch()
    preview = await pt.pipeline.preview("bench", "retry_job", [str(i) for i in ids])
    previewed = watch()
    await pt.pipeline.execute("bench", preview.token, "bulk retry benchmark")
    total = watch()
    return {"preview": previewed, "confirm": total - previewed, "total": total}


async def bulk_retry(pt: Powertools, url: str, n: int, rounds: int) -> list[dict[str, float]]:
    """``rounds`` rounds, each on fresh sets of ``n`` discarded jobs; which side goes first
    alternates, so a machine that slows down over the run does not favour one side."""
    results = []
    for r in range(rounds):
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as raw:
            ours = [row[0] for row in await (await raw.execute(DISCARD_SET, {"n": n})).fetchall()]
            theirs = [row[0] for row in await (await raw.execute(DISCARD_SET, {"n": n})).fetchall()]
            await raw.execute("VACUUM ANALYZE oban_jobs")
        if r % 2 == 0:
            oban_ms = await oban_retry(url, theirs)
            result = await audited_retry(pt, ours)
        else:
            result = await audited_retry(pt, ours)
            oban_ms = await oban_retry(url, theirs)
        results.append({**result, "oban": oban_ms})
    return results


async def main(rounds: int, bulk: int, bulk_rounds: int, section: str) -> None:
    with scratch_database() as url:
        await migrate.apply(url)
        pt = Powertools(Config(database_url=url, auth=BenchAuth(), display=PlainDisplay()))
        async with pt:
            single = await single_actions(pt, url, rounds)
            runs = await bulk_retry(pt, url, bulk, bulk_rounds)
        server = url.rsplit("/", 1)[0] + "/postgres"
    bare = single["bare"]
    print(f"# bench.actions — {machine()}")
    for t in single.values():
        print(f"{t.label:<28} p50 {ms(t.p50)}  p95 {ms(t.p95)}  (n={len(t.samples)})")
    confirm_ratio = single["confirm"].p50 / bare.p50
    total_ratio = single["total"].p50 / bare.p50
    print(
        f"ratio confirm/bare (p50): {confirm_ratio:.2f}x, preview+confirm/bare: {total_ratio:.2f}x"
    )
    bulks = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
    for key in ("preview", "confirm", "total", "oban"):
        every = ", ".join(f"{run[key]:.0f}" for run in runs)
        print(f"bulk retry of {bulk} jobs, {key:<8} median {ms(bulks[key])}  ({every})")
    bulk_confirm = statistics.median(run["confirm"] / run["oban"] for run in runs)
    bulk_total = statistics.median(run["total"] / run["oban"] for run in runs)
    print(
        f"ratio bulk confirm/oban (median of {len(runs)} rounds): {bulk_confirm:.2f}x, "
        f"preview+confirm/oban: {bulk_total:.2f}x"
    )

    def met(ratio: float, target: float) -> str:
        return "yes" if ratio <= target else "**no**"

    rows = [
        [f"single `pause_cron_entry`: {t.label}", f"{t.p50:.2f}", f"{t.p95:.2f}", "", ""]
        for t in single.values()
    ]
    rows += [
        ["single: confirm / bare (p50)", "", "", f"{confirm_ratio:.2f}x", met(confirm_ratio, 2)],
        [
            "single: preview+confirm / bare (p50)",
            "",
            "",
            f"{total_ratio:.2f}x",
            met(total_ratio, 2),
        ],
    ]
    for key, label in (
        ("preview", "preview"),
        ("confirm", "confirm"),
        ("total", "preview + confirm"),
        ("oban", "oban `retry_many_jobs`"),
    ):
        every = ", ".join(f"{run[key]:.0f}" for run in runs)
        rows.append(
            [f"bulk retry of {bulk:,}: {label} (rounds: {every})", f"{bulks[key]:.0f}", "", "", ""]
        )
    rows += [
        [
            "bulk: confirm / oban (median of the rounds' ratios)",
            "",
            "",
            f"{bulk_confirm:.2f}x",
            met(bulk_confirm, 1.5),
        ],
        [
            "bulk: preview+confirm / oban (median)",
            "",
            "",
            f"{bulk_total:.2f}x",
            met(bulk_total, 1.5),
        ],
    ]
    body = (
        f"{rounds} rounds of the single action (ms; audited and bare interleaved); "
        f"{len(runs)} bulk rounds of {bulk:,} discarded jobs each (medians; which side goes "
        "first alternates). Targets: single <= 2x the bare commit, bulk "
        "<= 1.5x `retry_many_jobs`.\n\n"
        + table(["measure", "p50 (ms)", "p95 (ms)", "ratio", "met"], rows)
    )
    write_section(section, "Audited actions against bare equivalents", body, server)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--bulk", type=int, default=100_000)
    parser.add_argument("--bulk-rounds", type=int, default=3)
    parser.add_argument("--section", default="actions", help="RESULTS.md section to (re)write")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.bulk, args.bulk_rounds, args.section))
