""" "Why isn't this job running?" at 1M jobs: the explainer's answer time, p50 / p95.

    python -m bench.explain [--jobs 1000000] [--calls 200] [--keep] [--section NAME]

A database is seeded (bench.seed; ``--keep`` reuses the kept one of the same size), then
made to hold every kind of wait: a limited, partitioned queue (a global limit per account
and a rate limit, its jobs keyed as the runtime keys them, its executing jobs counting), a
paused queue, a paused cron entry's job, scheduled and retryable jobs, a plain queue with
tens of thousands of jobs ahead, a finished job. ``--calls`` explanations go round-robin
over those subjects through the service (``read_models.explain.explain``, one pooled
connection, as the page, the bundle and the CLI call it), then as many through the JSON
API in-process (routing, the auth seam, the service, JSON). Each call is one sample.

Target: p95 <= 50 ms at 1M jobs.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import LiteralString

import httpx
import psycopg

from bench.actions import BenchAuth, PlainDisplay
from bench.common import Stopwatch, Timing, machine, ms, seeded_database
from bench.report import table, write_section
from oban_powertools import Config, Powertools
from oban_powertools.display import Display
from oban_powertools.read_models.explain import explain

TARGET_P95_MS = 50.0

# queue_3 (the limited queue) gets the limits a node would declare (global 2 per account, 100 starts a minute
# per account) and its unfinished jobs the partition key the runtime's re-keying writes.
PREPARE: list[LiteralString] = [
    """
    INSERT INTO powertools_queue_limits (queue, global_limit, global_partitioned,
        rate_allowed, rate_period, rate_partitioned, partition_fields, partition_keys,
        declared, declared_by, declared_at)
    VALUES ('queue_3', 2, true, 100, 60, true, ARRAY['args'], ARRAY['account_id'],
            '{}', 'node-0', now())
    ON CONFLICT (queue) DO NOTHING
    """,
    """
    UPDATE oban_jobs SET meta = jsonb_set(meta, '{partition_key}', to_jsonb(
        powertools_partition_key(worker, args, ARRAY['args'], ARRAY['account_id'])))
    WHERE queue = 'queue_3'
      AND state IN ('available', 'scheduled', 'retryable', 'executing')
      AND NOT meta ? 'partition_key'
    """,
    """
    INSERT INTO powertools_limit_turns (queue, partition_key)
    SELECT queue, meta ->> 'partition_key' FROM oban_jobs
    WHERE queue = 'queue_3' AND state = 'available' ORDER BY id LIMIT 1
    ON CONFLICT (queue) DO NOTHING
    """,
    # Both seeded nodes run the runtime, and look alive, as running nodes would.
    """
    INSERT INTO powertools_runtime_nodes (name, node, version)
    SELECT DISTINCT name, node, 'bench' FROM oban_producers
    ON CONFLICT (name, node) DO UPDATE SET seen_at = now()
    """,
    "UPDATE oban_producers SET updated_at = timezone('UTC', now())",
    # A job the paused cron entry enqueued before its pause.
    """
    UPDATE oban_jobs SET meta = meta || '{"cron": true, "cron_name": "entry_1"}'
    WHERE id = (SELECT max(id) FROM oban_jobs WHERE state = 'available' AND queue = 'queue_1')
    """,
    "ANALYZE oban_jobs",
]

SUBJECTS: list[tuple[str, LiteralString]] = [
    (
        "limited, partitioned queue (latest available)",
        "SELECT max(id) FROM oban_jobs WHERE state = 'available' AND queue = 'queue_3'",
    ),
    (
        "plain queue, many ahead (latest available)",
        "SELECT max(id) FROM oban_jobs WHERE state = 'available' AND queue = 'queue_5'",
    ),
    (
        "paused queue",
        "SELECT max(id) FROM oban_jobs WHERE state = 'available' AND queue = 'queue_0'",
    ),
    ("paused cron entry's job", "SELECT max(id) FROM oban_jobs WHERE meta ? 'cron_name'"),
    ("scheduled", "SELECT max(id) FROM oban_jobs WHERE state = 'scheduled'"),
    ("retryable", "SELECT max(id) FROM oban_jobs WHERE state = 'retryable'"),
    ("completed", "SELECT max(id) FROM oban_jobs WHERE state = 'completed'"),
]


async def prepare(url: str) -> list[tuple[str, int]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for statement in PREPARE:
            await conn.execute(statement)
        subjects = []
        for label, query in SUBJECTS:
            cur = await conn.execute(query)
            row = await cur.fetchone()
            if row is None or row[0] is None:
                raise RuntimeError(f"no subject for {label}")
            subjects.append((label, int(row[0])))
    return subjects


async def measure(jobs: int, calls: int, keep: bool) -> tuple[dict[str, Timing], str, list[str]]:
    async with seeded_database(jobs, keep=keep) as url:
        subjects = await prepare(url)
        pt = Powertools(Config(database_url=url, auth=BenchAuth(), display=PlainDisplay()))
        service: list[float] = []
        api: list[float] = []
        per_subject: dict[str, list[float]] = {label: [] for label, _ in subjects}
        answers: list[str] = []
        async with pt:
            display = Display(pt.config.display, "api")
            for label, job_id in subjects:  # warm up, and keep each answer for the report
                found = await explain(pt.db, display, job_id)
                assert found is not None
                codes = ", ".join(r.code for r in found.reasons) or "none"
                answers.append(f"{label} (job {job_id}): reasons {codes}")
            for i in range(calls):
                label, job_id = subjects[i % len(subjects)]
                watch = Stopwatch()
                await explain(pt.db, display, job_id)
                elapsed = watch()
                service.append(elapsed)
                per_subject[label].append(elapsed)
            transport = httpx.ASGITransport(app=pt.asgi_app())
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                for i in range(calls):
                    _, job_id = subjects[i % len(subjects)]
                    watch = Stopwatch()
                    response = await client.get(f"/api/jobs/{job_id}/explain")
                    api.append(watch())
                    response.raise_for_status()
        timings = {
            "service (all subjects)": Timing("service", service),
            "JSON API (all subjects)": Timing("api", api),
        }
        timings.update({f"service: {k}": Timing(k, v) for k, v in per_subject.items()})
        return timings, url, answers


def report(jobs: int, calls: int, timings: dict[str, Timing], answers: list[str]) -> str:
    rows = []
    for label, t in timings.items():
        met = "yes" if t.p95 <= TARGET_P95_MS else "**no**"
        rows.append([label, str(len(t.samples)), f"{t.p50:.1f}", f"{t.p95:.1f}", met])
    out = [
        f"{calls} explanations through the service and {calls} through the JSON API, "
        f"round-robin over {len(answers)} subjects, at {jobs:,} jobs. Target: p95 <= "
        f"{TARGET_P95_MS:.0f} ms.",
        "",
        table(["calls", "n", "p50 ms", "p95 ms", "met"], rows),
        "",
        "Subjects and the reasons each answer gave:",
        "",
    ]
    out += [f"- {a}" for a in answers]
    return "\n".join(out)


async def main(jobs: int, calls: int, keep: bool, section: str) -> None:
    print(f"# bench.explain — {machine()}")
    timings, url, answers = await measure(jobs, calls, keep)
    for label, t in timings.items():
        print(f"{label:<52} p50 {ms(t.p50)} p95 {ms(t.p95)}")
    body = report(jobs, calls, timings, answers)
    print()
    print(body)
    server = url.rsplit("/", 1)[0] + "/postgres"
    write_section(section, f"Explain ({jobs:,} jobs)", body, server)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the seeded database for reuse")
    parser.add_argument("--section", default="explain", help="RESULTS.md section to (re)write")
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.calls, args.keep, args.section))
