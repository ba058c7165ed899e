"""Every control-plane page at 100k, 1M and 10M jobs, beside the naive query for the same view.

    python -m bench.pages [--sizes 100000,1000000,10000000] [--rounds 30] [--naive-rounds 5]
                          [--keep] [--section NAME] [--note TEXT] [--freeze-gc]

For each size a database is seeded (bench.seed) and the ASGI app is driven in-process
through httpx's ASGITransport with a permissive auth seam: the wall time of each request
(routing, auth seam, read models, SQL, template rendering) is one sample. Requests go
round-robin over the pages, so a slow moment of the machine hits all pages alike.

Beside each page the query a simple dashboard would run for the same view (exact counts
with GROUP BY, OFFSET paging, a count of the filtered rows) runs on its own connection in
the same run. ``--keep`` keeps the seeded databases between runs (seeding 10M jobs takes
minutes); a kept database gets pending migrations applied before it is measured.

Targets: p95 <= 100 ms at 10M jobs, and p95(10M) / p95(100k) <= 2 for every page.

The section says how many full garbage collections ran during the timed requests: each
walks every object of the process (45 ms here) inside whichever request is in flight.
``--freeze-gc`` measures the pages as a host that freezes its start-up objects
(docs/installation.md) runs them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

import httpx
import psycopg

from bench.actions import BenchAuth, PlainDisplay
from bench.common import Stopwatch, Timing, machine, ms, seeded_database
from bench.report import table, write_section
from bench.rollups import fill
from oban_powertools import Config, Powertools

TARGET_P95_MS = 100.0
TARGET_GROWTH = 2.0


@dataclass(frozen=True)
class Naive:
    """What a simple dashboard would run for the same view: statements run in order."""

    label: str
    statements: list[tuple[LiteralString, dict[str, Any]]]


@dataclass(frozen=True)
class Page:
    label: str
    path: str
    naive: Naive


@dataclass(frozen=True)
class Subjects:
    """Rows of the seeded database the pages are asked about."""

    job_id: int  # a retryable job with errors
    bulk_job_id: str  # a job named in a bulk audit event
    deep_cursor: int  # a keyset cursor 95% of the way back through the table
    deep_offset: int  # the OFFSET a naive dashboard needs to reach the same page


NAIVE_PAGE: LiteralString = """
SELECT id, state, queue, worker, attempt, max_attempts, args, errors, inserted_at,
       scheduled_at FROM oban_jobs WHERE {where} ORDER BY id DESC LIMIT 50 OFFSET %(offset)s
"""


NAIVE_SERIES: LiteralString = """
SELECT date_trunc(%(unit)s, t) AS bucket, kind, count(*) FROM (
    SELECT completed_at AS t, 'completed' AS kind FROM oban_jobs
    WHERE state = 'completed' AND completed_at > timezone('UTC', now()) - %(span)s::interval
    UNION ALL
    SELECT discarded_at, 'discarded' FROM oban_jobs
    WHERE state = 'discarded' AND discarded_at > timezone('UTC', now()) - %(span)s::interval
) x GROUP BY 1, 2
"""
NAIVE_WAIT: LiteralString = """
SELECT date_trunc(%(unit)s, attempted_at), avg(attempted_at - scheduled_at) FROM oban_jobs
WHERE attempted_at > timezone('UTC', now()) - %(span)s::interval GROUP BY 1
"""


def naive_charts(unit: str, span: str) -> list[tuple[LiteralString, dict[str, Any]]]:
    params = {"unit": unit, "span": span}
    return [(NAIVE_SERIES, params), (NAIVE_WAIT, params)]


def pages(s: Subjects) -> list[Page]:
    entry = "entry_5"
    trail: LiteralString = (
        "SELECT * FROM powertools_audit_events WHERE resource_type = 'job' AND "
        "(resource_id = %(id)s OR detail->'targets' ? %(id)s) ORDER BY id DESC"
    )
    job = {"id": str(s.job_id)}
    return [
        Page(
            "overview",
            "/",
            Naive(
                "count(*) GROUP BY state; failing workers GROUP BY worker",
                [
                    ("SELECT state, count(*) FROM oban_jobs GROUP BY state", {}),
                    (
                        "SELECT worker, count(*), max(attempted_at) FROM oban_jobs "
                        "WHERE state IN ('retryable', 'discarded') GROUP BY worker",
                        {},
                    ),
                ],
            ),
        ),
        Page(
            "overview ?window=day",
            "/?window=day",
            Naive(
                "the charts' day: per hour GROUP BY over the time columns, wait by attempted_at",
                naive_charts("hour", "1 day"),
            ),
        ),
        Page(
            "queue page (charts)",
            "/queues/queue_7",
            Naive(
                "the charts' hour per minute over all jobs (no queue filter helps it)",
                naive_charts("minute", "1 hour"),
            ),
        ),
        Page(
            "queue page ?window=day",
            "/queues/queue_7?window=day",
            Naive("the charts' day per hour", naive_charts("hour", "1 day")),
        ),
        Page(
            "cron",
            "/cron",
            Naive(
                "runs and last run per entry: GROUP BY meta->>'cron_name'",
                [
                    (
                        "SELECT meta->>'cron_name', count(*), max(attempted_at) FROM oban_jobs "
                        "WHERE meta ? 'cron_name' GROUP BY 1",
                        {},
                    )
                ],
            ),
        ),
        Page(
            "cron detail",
            f"/cron/{entry}",
            Naive(
                "the entry's jobs by meta, OFFSET 0, count(*)",
                [
                    (
                        "SELECT * FROM oban_jobs WHERE meta->>'cron_name' = %(name)s "
                        "ORDER BY id DESC LIMIT 25 OFFSET 0",
                        {"name": entry},
                    ),
                    (
                        "SELECT count(*) FROM oban_jobs WHERE meta->>'cron_name' = %(name)s",
                        {"name": entry},
                    ),
                ],
            ),
        ),
        Page(
            "queues",
            "/queues",
            Naive(
                "count(*) GROUP BY queue, state (oban's count_jobs)",
                [("SELECT queue, state, count(*) FROM oban_jobs GROUP BY queue, state", {})],
            ),
        ),
        Page(
            "jobs ?state=retryable",
            "/jobs?state=retryable",
            Naive(
                "WHERE state, OFFSET 0, count(*)",
                [
                    (
                        NAIVE_PAGE.replace("{where}", "state = 'retryable'"),
                        {"offset": 0},
                    ),
                    ("SELECT count(*) FROM oban_jobs WHERE state = 'retryable'", {}),
                ],
            ),
        ),
        Page(
            "jobs ?queue=queue_7",
            "/jobs?queue=queue_7",
            Naive(
                "WHERE queue, OFFSET 0, count(*)",
                [
                    (NAIVE_PAGE.replace("{where}", "queue = 'queue_7'"), {"offset": 0}),
                    ("SELECT count(*) FROM oban_jobs WHERE queue = 'queue_7'", {}),
                ],
            ),
        ),
        Page(
            "jobs deep page (completed)",
            f"/jobs?state=completed&before={s.deep_cursor}",
            Naive(
                f"WHERE state, OFFSET {s.deep_offset:,}, count(*)",
                [
                    (
                        NAIVE_PAGE.replace("{where}", "state = 'completed'"),
                        {"offset": s.deep_offset},
                    ),
                    ("SELECT count(*) FROM oban_jobs WHERE state = 'completed'", {}),
                ],
            ),
        ),
        Page(
            "job detail",
            f"/jobs/{s.job_id}",
            Naive(
                "the job; its audit trail incl. bulk events (no index)",
                [("SELECT * FROM oban_jobs WHERE id = %(id)s::bigint", job), (trail, job)],
            ),
        ),
        Page(
            "audit ?actor=",
            "/audit?actor=operator-7",
            Naive(
                "WHERE principal_id, OFFSET 0, count(*)",
                [
                    (
                        "SELECT * FROM powertools_audit_events WHERE principal_id = 'operator-7' "
                        "ORDER BY id DESC LIMIT 50 OFFSET 0",
                        {},
                    ),
                    (
                        "SELECT count(*) FROM powertools_audit_events "
                        "WHERE principal_id = 'operator-7'",
                        {},
                    ),
                ],
            ),
        ),
        Page(
            "audit ?job (bulk targets)",
            f"/audit?resource_type=job&resource_id={s.bulk_job_id}",
            Naive(
                "resource or bulk targets, OFFSET 0, count(*)",
                [
                    (trail + " LIMIT 50 OFFSET 0", {"id": s.bulk_job_id}),
                    (
                        "SELECT count(*) FROM powertools_audit_events WHERE resource_type = "
                        "'job' AND (resource_id = %(id)s OR detail->'targets' ? %(id)s)",
                        {"id": s.bulk_job_id},
                    ),
                ],
            ),
        ),
        Page(
            "forensics cron entry",
            f"/forensics?resource_type=cron_entry&resource_id={entry}",
            Naive(
                "the entry's jobs by meta and their count; its audit trail",
                [
                    (
                        "SELECT * FROM oban_jobs WHERE meta->>'cron_name' = %(name)s "
                        "ORDER BY id DESC LIMIT 200",
                        {"name": entry},
                    ),
                    (
                        "SELECT count(*) FROM oban_jobs WHERE meta->>'cron_name' = %(name)s",
                        {"name": entry},
                    ),
                    (
                        "SELECT * FROM powertools_audit_events WHERE resource_type = "
                        "'cron_entry' AND resource_id = %(name)s ORDER BY id DESC",
                        {"name": entry},
                    ),
                ],
            ),
        ),
        Page(
            "forensics job",
            f"/forensics?resource_type=job&resource_id={s.job_id}",
            Naive(
                "the job; its audit trail incl. bulk events (no index)",
                [("SELECT * FROM oban_jobs WHERE id = %(id)s::bigint", job), (trail, job)],
            ),
        ),
    ]


async def subjects(url: str, jobs: int) -> Subjects:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT max(id) FROM oban_jobs WHERE state = 'retryable' AND errors <> '[]'"
        )
        job_id = int((await cur.fetchone() or [0])[0] or 0)
        cur = await conn.execute(
            "SELECT detail->'targets'->>0 FROM powertools_audit_events "
            "WHERE resource_id LIKE 'bulk:%' ORDER BY id DESC LIMIT 1"
        )
        bulk = (await cur.fetchone() or ["1"])[0] or "1"
        cursor = max(2, jobs // 20)
        cur = await conn.execute(
            "SELECT count(*) FROM oban_jobs WHERE state = 'completed' AND id >= %s", (cursor,)
        )
        offset = int((await cur.fetchone() or [0])[0])
        # The seed's producers are static rows: make them look alive, as a running node would.
        await conn.execute("UPDATE oban_producers SET updated_at = timezone('UTC', now())")
        # A visibility map, as autovacuum keeps it: without one every index-only scan (the
        # capped counts) visits the heap. The seed's VACUUM does not always set it (a 1M run
        # once measured 1.2 s on the overview for that reason alone).
        cur = await conn.execute(
            "SELECT relallvisible < relpages / 2 FROM pg_class WHERE oid = 'oban_jobs'::regclass"
        )
        if (await cur.fetchone() or [False])[0]:
            await conn.execute("VACUUM ANALYZE oban_jobs")
    return Subjects(job_id, str(bulk), cursor, offset)


async def measure_size(
    jobs: int, rounds: int, naive_rounds: int, keep: bool, freeze_gc: bool = False
) -> tuple[list[Page], dict[str, tuple[Timing, Timing]], str, int]:
    async with seeded_database(jobs, keep=keep) as url:
        subject = await subjects(url, jobs)
        # The charts draw the job rollup: a day of it, as a leader writes it.
        await fill(url)
        plan = pages(subject)
        pt = Powertools(Config(database_url=url, auth=BenchAuth(), display=PlainDisplay()))
        ours: dict[str, list[float]] = {p.label: [] for p in plan}
        naive: dict[str, list[float]] = {p.label: [] for p in plan}
        async with pt:
            transport = httpx.ASGITransport(app=pt.asgi_app())
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                for _ in range(3):
                    for p in plan:
                        response = await client.get(p.path)
                        if response.status_code != 200:
                            raise RuntimeError(f"{p.path}: HTTP {response.status_code}")
                if freeze_gc:
                    gc.freeze()  # what the process holds after start-up and warm-up
                full = full_collections()
                try:
                    for _ in range(rounds):
                        for p in plan:
                            watch = Stopwatch()
                            response = await client.get(p.path)
                            ours[p.label].append(watch())
                            response.raise_for_status()
                finally:
                    gc.callbacks.remove(full.count)
                    if freeze_gc:
                        gc.unfreeze()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as raw:
            for _ in range(naive_rounds):
                for p in plan:
                    watch = Stopwatch()
                    for sql, params in p.naive.statements:
                        cur = await raw.execute(sql, params)
                        await cur.fetchall()
                    naive[p.label].append(watch())
        results = {
            p.label: (Timing(p.label, ours[p.label]), Timing(p.naive.label, naive[p.label]))
            for p in plan
        }
        return plan, results, url, full.seen


@dataclass
class FullCollections:
    """How many full (generation 2) collections ran: each walks every tracked object of the
    process, and runs inside whichever request is in flight."""

    seen: int = 0

    def count(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            self.seen += 1


def full_collections() -> FullCollections:
    counter = FullCollections()
    gc.callbacks.append(counter.count)
    return counter


def report(
    sizes: Sequence[int],
    plan: list[Page],
    results: dict[int, dict[str, tuple[Timing, Timing]]],
    rounds: int,
    naive_rounds: int,
    note: str = "",
    freeze_gc: bool = False,
    collections: dict[int, int] | None = None,
) -> str:
    out = [
        f"{rounds} requests per page and size (p50 / p95 wall time of the whole request "
        f"in-process), {naive_rounds} runs of each naive query. Targets: p95 <= "
        f"{TARGET_P95_MS:.0f} ms at the largest size, growth p95(largest)/p95(smallest) <= "
        f"{TARGET_GROWTH:.0f}.",
        "",
    ]
    if note:
        out += [f"Conditions: {note.strip()}", ""]
    frozen = (
        "frozen after the warm-up (`gc.freeze()`, as docs/installation.md recommends a host do)"
        if freeze_gc
        else "not frozen (Python's defaults)"
    )
    seen = ", ".join(f"{n:,}: {c}" for n, c in (collections or {}).items())
    out += [
        f"Garbage collector: start-up objects {frozen}; full collections during the timed "
        f"requests, by size: {seen or 'not counted'}.",
        "",
    ]
    headers = ["page"]
    for n in sizes:
        headers += [f"ours p50/p95 @{n:,}", f"naive p50/p95 @{n:,}"]
    if len(sizes) > 1:
        headers += [f"growth p95 {sizes[-1]:,}/{sizes[0]:,}", "met"]
    rows = []
    for p in plan:
        row = [p.label]
        for n in sizes:
            o, v = results[n][p.label]
            row += [f"{o.p50:.1f} / {o.p95:.1f}", f"{v.p50:.1f} / {v.p95:.1f}"]
        last = results[sizes[-1]][p.label][0].p95
        if len(sizes) > 1:
            growth = last / results[sizes[0]][p.label][0].p95
            met = last <= TARGET_P95_MS and growth <= TARGET_GROWTH
            row += [f"{growth:.2f}", "yes" if met else "**no**"]
        rows.append(row)
    out.append(table(headers, rows))
    out += ["", "Naive queries, per page:", ""]
    out += [f"- {p.label}: {p.naive.label}" for p in plan]
    return "\n".join(out)


async def main(
    sizes: list[int],
    rounds: int,
    naive_rounds: int,
    keep: bool,
    section: str,
    note: str = "",
    freeze_gc: bool = False,
) -> None:
    print(f"# bench.pages — {machine()}")
    results: dict[int, dict[str, tuple[Timing, Timing]]] = {}
    plan: list[Page] = []
    url = ""
    collections: dict[int, int] = {}
    for n in sizes:
        plan, results[n], url, collections[n] = await measure_size(
            n, rounds, naive_rounds, keep, freeze_gc
        )
        print(f"\n## {n:,} jobs")
        for label, (o, v) in results[n].items():
            print(
                f"{label:<28} ours p50 {ms(o.p50)} p95 {ms(o.p95)}   "
                f"naive p50 {ms(v.p50)} p95 {ms(v.p95)}"
            )
    body = report(sizes, plan, results, rounds, naive_rounds, note, freeze_gc, collections)
    print()
    print(body)
    server = url.rsplit("/", 1)[0] + "/postgres" if url else None
    write_section(section, f"Pages ({', '.join(f'{n:,}' for n in sizes)} jobs)", body, server)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--naive-rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep seeded databases for reuse")
    parser.add_argument("--section", default="pages", help="RESULTS.md section to (re)write")
    parser.add_argument(
        "--note", default="", help="the run's conditions, written into the section (e.g. load)"
    )
    parser.add_argument(
        "--freeze-gc",
        action="store_true",
        help="gc.freeze() after the warm-up, as a host following docs/installation.md does",
    )
    args = parser.parse_args()
    asyncio.run(
        main(
            [int(s) for s in args.sizes.split(",") if s],
            args.rounds,
            args.naive_rounds,
            args.keep,
            args.section,
            args.note,
            args.freeze_gc,
        )
    )
