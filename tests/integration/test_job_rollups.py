"""The job rollup against a real Postgres: exact per-minute counts and waits from a known
workload, idempotent and race-free passes, pruning, bounded catch-up, leader only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from oban import Oban, telemetry
from psycopg_pool import AsyncConnectionPool

from oban_powertools import Powertools
from oban_powertools.runtime import Runtime
from oban_powertools.runtime.rollup import TELEMETRY_EVENT, JobRollup, aggregate
from tests.support.rollups import MINUTE, failure, floor_minute, put_job, rollup_rows
from tests.support.seams import make_powertools
from tests.support.waiting import eventually

S = timedelta(seconds=1)


class Leader:
    def __init__(self, leads: bool = True) -> None:
        self.is_leader = leads


@pytest.fixture
async def pt(db_url: str) -> AsyncIterator[Powertools]:
    powertools = make_powertools(db_url)
    async with powertools:
        yield powertools


async def seed_workload(conn: psycopg.AsyncConnection[Any], m: datetime) -> None:
    """Jobs of queue "mail" around minute ``m``, and one of "default"."""
    # Completed in m, waited 2 s.
    await put_job(
        conn, "completed", queue="mail", scheduled=m, attempted=m + 2 * S, ended=m + 10 * S
    )
    # Started in m (waited 4 s), completed in the next minute.
    await put_job(
        conn, "completed", queue="mail", scheduled=m + S, attempted=m + 5 * S, ended=m + 65 * S
    )
    # Discarded in m on its third attempt; its first two attempts errored 5 and 2 minutes
    # before (retried), the third one's error is the discard itself.
    await put_job(
        conn,
        "discarded",
        queue="mail",
        scheduled=m + 20 * S,
        attempted=m + 20 * S,
        ended=m + 25 * S,
        attempt=3,
        errors=[
            failure(1, m - 5 * MINUTE),
            failure(2, m - 2 * MINUTE),
            failure(3, m + 24 * S),
        ],
    )
    # Errored in m, then succeeded three minutes later (waited 10 s for that attempt).
    await put_job(
        conn,
        "completed",
        queue="mail",
        scheduled=m + 170 * S,
        attempted=m + 180 * S,
        ended=m + 190 * S,
        attempt=2,
        errors=[failure(1, m + 30 * S)],
    )
    # Errored in m and waits to retry (it waited 0.5 s for the attempt).
    await put_job(
        conn,
        "retryable",
        queue="mail",
        scheduled=m + 39.5 * S,
        attempted=m + 40 * S,
        attempt=1,
        errors=[failure(1, m + 45 * S)],
    )
    # Cancelled in m before it ever ran.
    await put_job(conn, "cancelled", queue="mail", scheduled=m, ended=m + 50 * S, attempt=0)
    # Started in m and still running (waited 10 s).
    await put_job(conn, "executing", queue="mail", scheduled=m + 45 * S, attempted=m + 55 * S)
    await put_job(conn, "completed", scheduled=m + 14 * S, attempted=m + 14 * S, ended=m + 15 * S)
    # Long before the span: not counted anywhere.
    await put_job(
        conn, "completed", scheduled=m - 2 * 60 * MINUTE, attempted=m - 120 * MINUTE,
        ended=m - 119 * MINUTE,
    )  # fmt: skip


def expected(m: datetime) -> dict[tuple[datetime, str], tuple[int, ...]]:
    # (completed, discarded, retried, cancelled, wait_count, wait_ms_sum, wait_ms_max)
    return {
        (m - 5 * MINUTE, "mail"): (0, 0, 1, 0, 0, 0, 0),
        (m - 2 * MINUTE, "mail"): (0, 0, 1, 0, 0, 0, 0),
        (m, "default"): (1, 0, 0, 0, 1, 0, 0),
        (m, "mail"): (1, 1, 2, 1, 5, 2000 + 4000 + 0 + 500 + 10000, 10000),
        (m + MINUTE, "mail"): (1, 0, 0, 0, 0, 0, 0),
        (m + 3 * MINUTE, "mail"): (1, 0, 0, 0, 1, 10000, 10000),
    }


async def test_a_known_workload_gives_exact_counts_and_waits_per_minute(
    pt: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    now = datetime.now(UTC)
    m = floor_minute(now) - 10 * MINUTE
    await seed_workload(conn, m)
    async with pt.db.transaction() as c:
        written = await aggregate(c, m - 10 * MINUTE, m + 5 * MINUTE, now=now)
    assert written == 6
    assert await rollup_rows(conn) == expected(m)

    # Re-running the same minutes recomputes and overwrites: nothing is counted twice.
    async with pt.db.transaction() as c:
        await aggregate(c, m - 10 * MINUTE, m + 5 * MINUTE, now=now)
    assert await rollup_rows(conn) == expected(m)
    # A narrower re-run rewrites only its own minutes.
    async with pt.db.transaction() as c:
        await aggregate(c, m, m + MINUTE, now=now)
    assert await rollup_rows(conn) == expected(m)


async def test_a_minute_that_lost_its_jobs_is_overwritten_not_kept(
    pt: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    now = datetime.now(UTC)
    m = floor_minute(now) - 3 * MINUTE
    await put_job(conn, "completed", queue="gone", scheduled=m, attempted=m, ended=m + S)
    async with pt.db.transaction() as c:
        await aggregate(c, m, m + MINUTE, now=now)
    assert list(await rollup_rows(conn)) == [(m, "gone")]
    await conn.execute("DELETE FROM oban_jobs")
    async with pt.db.transaction() as c:
        await aggregate(c, m, m + MINUTE, now=now)
    assert await rollup_rows(conn) == {}


async def test_two_concurrent_passes_write_each_minute_once(
    pt: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    now = datetime.now(UTC)
    m = floor_minute(now) - 10 * MINUTE
    await seed_workload(conn, m)
    events: list[dict[str, Any]] = []
    telemetry.attach("rollup-test", [TELEMETRY_EVENT], lambda _n, meta: events.append(meta))
    try:
        one, two = (JobRollup(pt.db, leader=Leader(), node=n) for n in ("node-1", "node-2"))
        passes = await asyncio.gather(one.run_pass(now), two.run_pass(now))
    finally:
        telemetry.detach("rollup-test")
    # The first pass of a fresh install fills the last hour; the second finds it written.
    assert sorted(p.minutes for p in passes) == [0, 60]
    rows = await rollup_rows(conn)
    assert {k: v for k, v in rows.items() if k[0] >= m - 5 * MINUTE} == expected(m)
    cur = await conn.execute("SELECT * FROM powertools_job_rollup_progress")
    (progress,) = await cur.fetchall()
    assert progress["written_through"].replace(tzinfo=UTC) == floor_minute(now - 5 * S)
    (event,) = events
    assert event["minutes"] == 60 and event["rows"] == len(rows) and event["duration"] > 0
    # The next minute's pass writes only that minute.
    later = await one.run_pass(now + MINUTE)
    assert (later.minutes, later.first) == (1, floor_minute(now - 5 * S))


async def test_pruning_drops_only_rows_older_than_the_retention(
    pt: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    now = datetime.now(UTC)
    # (Rows of the last hour would be recomputed by the pass: these are older.)
    for days in (9, 7, 1):
        await conn.execute(
            "INSERT INTO powertools_job_rollups (minute, queue, completed) VALUES (%s, 'q', 1)",
            (floor_minute(now - timedelta(days=days, minutes=2)).replace(tzinfo=None),),
        )
    done = await JobRollup(pt.db, leader=Leader(), node="n").run_pass(now)
    assert done.pruned == 1
    ages = sorted(round((now - k[0]).total_seconds() / 86400) for k in await rollup_rows(conn))
    assert ages == [1, 7]
    short = JobRollup(pt.db, leader=Leader(), node="n", retention=timedelta(days=3))
    assert (await short.run_pass(now)).pruned == 1


async def test_catch_up_after_a_gap_is_bounded(
    pt: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    now = datetime.now(UTC)
    through = floor_minute(now - 5 * S)
    await conn.execute(
        "UPDATE powertools_job_rollup_progress SET written_through = %s, written_by = 'old'",
        ((through - timedelta(days=3)).replace(tzinfo=None),),
    )
    # Jobs ended 30 and 150 minutes ago: only the first is inside a 2-hour catch-up.
    await put_job(conn, "completed", queue="q", ended=through - 30 * MINUTE)
    await put_job(conn, "completed", queue="q", ended=through - 150 * MINUTE)
    rollup = JobRollup(pt.db, leader=Leader(), node="n", catch_up=timedelta(hours=2))
    done = await rollup.run_pass(now)
    assert (done.minutes, done.first, done.through) == (120, through - 120 * MINUTE, through)
    assert list(await rollup_rows(conn)) == [(through - 30 * MINUTE, "q")]
    # The default bound is a day.
    await conn.execute(
        "UPDATE powertools_job_rollup_progress SET written_through = %s",
        ((through - timedelta(days=3)).replace(tzinfo=None),),
    )
    done = await JobRollup(pt.db, leader=Leader(), node="n").run_pass(now)
    assert done.minutes == 24 * 60


async def test_the_loop_writes_only_on_the_leader(pt: Powertools, db_url: str) -> None:
    pools = [AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False) for _ in range(2)]
    runtimes = [
        Runtime(pt, declarations=[], import_oban_cron=False, leader_poll_interval=0.05)
        for _ in range(2)
    ]
    obans = [
        Oban(pool=pool, node=f"node-{i}", queues={"default": 1}, **rt.oban_options())
        for i, (pool, rt) in enumerate(zip(pools, runtimes, strict=True))
    ]
    for pool, oban in zip(pools, obans, strict=True):
        await pool.open()
        await oban.start()
    try:

        async def written_by() -> str | None:
            async with pt.db.connection() as c:
                cur = await c.execute(
                    "SELECT written_by FROM powertools_job_rollup_progress "
                    "WHERE written_through IS NOT NULL"
                )
                row = await cur.fetchone()
            return row["written_by"] if row else None

        async def has_progress() -> bool:
            return await written_by() is not None

        await eventually(has_progress, within=15, what="the leader's first rollup pass")
        leaders = [o for o in obans if o.is_leader]
        assert len(leaders) == 1
        leader = obans.index(leaders[0])
        assert await written_by() == f"node-{leader}"
        rollups = [rt.rollup for rt in runtimes]
        assert all(r is not None and r.running for r in rollups)
        assert rollups[leader] is not None and rollups[leader].last_pass is not None
        follower = rollups[1 - leader]
        assert follower is not None and follower.last_pass is None
    finally:
        for pool, oban in zip(pools, obans, strict=True):
            await oban.stop()
            await pool.close()
    assert all(rt.rollup is not None and not rt.rollup.running for rt in runtimes)
