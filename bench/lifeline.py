"""The accurate lifeline's cost at 1M jobs: a pass with nothing to rescue (what the leader
pays every interval), the same against oban's own age-based rescue, a pass rescuing 1,000
orphans, and the pages' read (``lifeline_counts``).

    python -m bench.lifeline [--jobs 1000000] [--executing 1000] [--passes 50]

The table holds ``--jobs`` jobs (90% completed, 10% available), ``--executing`` jobs
executing on live producers, and, for the rescue pass, as many more executing on a
producer that stopped heartbeating 5 minutes ago; after each rescue pass they are made
executing again (untimed). Targets: a pass with nothing to rescue <= 10 ms (it runs once
a lifeline interval, 60 s by default; oban's single age-based statement is shown for
reference: the pass is a transaction of two statements, four round trips); the counts
read <= 50 ms.

Results go to the ``lifeline`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from importlib import resources

import psycopg

from bench.common import Timing, machine, scratch_database
from bench.report import table, write_section
from oban_powertools.db import Database, migrate
from oban_powertools.read_models.lifeline import lifeline_counts
from oban_powertools.runtime.lifeline import Lifeline

SEED = """
INSERT INTO oban_jobs (worker, queue, args, state, attempt, completed_at)
SELECT 'bench.Noop', 'q' || (n %% 10), jsonb_build_object('n', n),
       CASE WHEN n %% 10 = 0 THEN 'available' ELSE 'completed' END::oban_job_state,
       CASE WHEN n %% 10 = 0 THEN 0 ELSE 1 END,
       CASE WHEN n %% 10 = 0 THEN NULL ELSE timezone('UTC', now()) END
FROM generate_series(1, %(n)s) AS n
"""
PRODUCER = """
INSERT INTO oban_producers (uuid, name, node, queue, meta, updated_at)
VALUES (%(uuid)s, 'Oban', %(node)s, 'q0', '{}',
        timezone('UTC', now()) - make_interval(secs => %(age)s))
"""
EXECUTING = """
INSERT INTO oban_jobs (worker, queue, args, state, attempt, attempted_at, attempted_by)
SELECT 'bench.Noop', 'q0', '{}', 'executing', 1,
       timezone('UTC', now()) - make_interval(secs => 30), ARRAY[%(node)s, %(uuid)s]
FROM generate_series(1, %(n)s)
"""
RESET = """
UPDATE oban_jobs SET state = 'executing', meta = '{}', errors = '[]'
WHERE attempted_by[2] = %(uuid)s
"""


def oban_rescue_sql() -> str:
    return resources.files("oban").joinpath("queries/rescue_jobs.sql").read_text()


async def timed(samples: list[float], coro: object) -> None:
    began = time.perf_counter()
    await coro  # type: ignore[misc]
    samples.append((time.perf_counter() - began) * 1000)


async def run(jobs: int, executing: int, passes: int) -> dict[str, Timing]:
    with scratch_database("bench_lifeline") as url:
        await migrate.apply(url)
        live, dead = str(uuid.uuid4()), str(uuid.uuid4())
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as raw:
            await raw.execute(SEED, {"n": jobs})
            await raw.execute(PRODUCER, {"uuid": live, "node": "alive", "age": 1})
            await raw.execute(PRODUCER, {"uuid": dead, "node": "dead", "age": 300})
            await raw.execute(EXECUTING, {"n": executing, "node": "alive", "uuid": live})
            await raw.execute("VACUUM ANALYZE")
            rescue_sql = oban_rescue_sql()
            async with Database(url) as db:
                lifeline = Lifeline(lambda: db, grace=lambda: 60.0, node="bench")
                quiet: list[float] = []
                oban: list[float] = []
                counts: list[float] = []
                for n in range(passes + 5):
                    keep = n >= 5  # the first rounds warm the caches
                    q: list[float] = []
                    o: list[float] = []
                    c: list[float] = []
                    await timed(q, lifeline.rescue())
                    await timed(o, raw.execute(rescue_sql, {"rescue_after": 300.0}))
                    async with db.connection() as conn:
                        await timed(c, lifeline_counts(conn, grace=60.0, stuck_after=900))
                    if keep:
                        quiet += q
                        oban += o
                        counts += c
                    if lifeline.last_pass is not None and lifeline.last_pass.changed:
                        raise RuntimeError("a quiet pass changed something")
                await raw.execute(EXECUTING, {"n": executing, "node": "dead", "uuid": dead})
                await raw.execute("VACUUM ANALYZE oban_jobs")
                rescues: list[float] = []
                for _ in range(max(5, passes // 5)):
                    await timed(rescues, lifeline.rescue())
                    assert lifeline.last_pass is not None
                    if len(lifeline.last_pass.rescued) != executing:
                        raise RuntimeError(f"rescued {len(lifeline.last_pass.rescued)}")
                    await raw.execute(RESET, {"uuid": dead})
    return {
        "quiet": Timing("quiet pass", quiet),
        "oban": Timing("oban's pass", oban),
        "counts": Timing("counts", counts),
        "rescue": Timing("rescue pass", rescues),
    }


async def main(args: argparse.Namespace) -> None:
    print(f"# bench.lifeline — {machine()}")
    t = await run(args.jobs, args.executing, args.passes)
    ratio = t["quiet"].p50 / t["oban"].p50
    for key in ("quiet", "oban", "counts", "rescue"):
        print(f"{t[key].label}: p50 {t[key].p50:.2f} ms, p95 {t[key].p95:.2f} ms")
    print(f"quiet pass / oban's pass: {ratio:.2f}x (target: quiet pass <= 10 ms)")
    n, e = f"{args.jobs:,}", f"{args.executing:,}"
    rows = [
        [
            f"lifeline pass, nothing to rescue ({n} jobs, {e} executing on live nodes)",
            f"p50 {t['quiet'].p50:.2f} ms",
            f"p95 {t['quiet'].p95:.2f} ms, {len(t['quiet'].samples)} passes",
            "yes" if t["quiet"].p50 <= 10 else "**no**",
        ],
        [
            "oban's age-based rescue_jobs.sql on the same table",
            f"p50 {t['oban'].p50:.2f} ms",
            f"p95 {t['oban'].p95:.2f} ms",
            "",
        ],
        [
            "ratio Powertools pass / oban's pass (p50)",
            f"{ratio:.2f}x",
            "one transaction of two statements vs one statement",
            "",
        ],
        [
            f"lifeline pass rescuing {e} orphans (one statement and its audit event)",
            f"p50 {t['rescue'].p50:.2f} ms",
            f"p95 {t['rescue'].p95:.2f} ms, {len(t['rescue'].samples)} passes",
            "",
        ],
        [
            "lifeline_counts (the pages' and exporters' read)",
            f"p50 {t['counts'].p50:.2f} ms",
            f"p95 {t['counts'].p95:.2f} ms",
            "yes" if t["counts"].p50 <= 50 else "**no**",
        ],
    ]
    body = (
        f"{n} jobs (90% completed, 10% available) and {e} executing on live producers; the "
        f"rescue pass adds {e} executing on a producer silent for 5 minutes (made executing "
        "again between passes, untimed). Each pass is the whole transaction: the rescue "
        "statement, oban's exhausted-available discard, the audit event when something "
        "changed, commit. Targets: quiet pass <= 10 ms (once a lifeline interval); counts <= 50 ms.\n\n"
        + table(["measure", "result", "detail", "met"], rows)
    )
    write_section(args.section, "Lifeline: pass cost and the counts read", body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--executing", type=int, default=1_000)
    parser.add_argument("--passes", type=int, default=50)
    parser.add_argument("--section", default="lifeline", help="RESULTS.md section to (re)write")
    asyncio.run(main(parser.parse_args()))
