"""The scheduler inside real oban nodes: leadership, handover, and its own loop.

Each node is a real ``Oban`` instance (distinct ``node=`` names, one shared database)
running Powertools' runtime. Time comes from a test clock: a manual one that the test
moves minute by minute, or a fast one on which a real run covers many minutes in
seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from oban import Oban
from psycopg_pool import AsyncConnectionPool

from oban_powertools import Powertools
from oban_powertools.cron.entries import CronEntrySpec, upsert_entry
from oban_powertools.db import Database
from oban_powertools.runtime import Runtime
from oban_powertools.runtime.scheduler import CronScheduler
from tests.support.seams import make_powertools
from tests.support.waiting import eventually

T0 = datetime(2031, 1, 6, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


class ManualClock:
    """Time moves only when the test sets it."""

    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    async def sleep_until(self, target: datetime, stopping: asyncio.Event, limit: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=limit)


class FastClock:
    """Simulated time running ``speed`` times faster than real time."""

    def __init__(self, start: datetime, speed: float) -> None:
        self.start, self.speed, self.t0 = start, speed, time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self.t0) * self.speed)

    async def sleep_until(self, target: datetime, stopping: asyncio.Event, limit: float) -> None:
        seconds = min(max((target - self.now()).total_seconds() / self.speed, 0.0), limit)
        with suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=seconds)


class Leader:
    is_leader = True


@pytest.fixture
async def pt(db_url: str) -> AsyncIterator[Powertools]:
    powertools = make_powertools(db_url)
    async with powertools:
        yield powertools


class Node:
    def __init__(self, db_url: str, name: str, runtime: Runtime) -> None:
        self.pool = AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False)
        self.runtime = runtime
        self.oban = Oban(
            pool=self.pool,
            node=name,
            queues={"default": 1},
            **runtime.oban_options(stager={"interval": 0.1}),
        )
        self.running = False

    @property
    def scheduler(self) -> CronScheduler:
        assert self.runtime.scheduler is not None
        return self.runtime.scheduler

    async def start(self) -> Node:
        await self.pool.open()
        await self.oban.start()
        self.running = True
        return self

    async def stop(self) -> None:
        if self.running:
            self.running = False
            await self.oban.stop()
            await self.pool.close()


@pytest.fixture
async def nodes() -> AsyncIterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in started:
        await node.stop()


def runtime(pt: Powertools, clock: Any) -> Runtime:
    # Entries are declared by the tests; oban's cron registry may hold other modules'.
    return Runtime(
        pt, clock=clock, declarations=[], import_oban_cron=False, leader_poll_interval=0.02
    )


async def declare(pt: Powertools, *specs: CronEntrySpec) -> None:
    async with pt.db.transaction() as conn:
        for spec in specs:
            await upsert_entry(conn, spec)


def spec(name: str, expression: str, **kw: Any) -> CronEntrySpec:
    return CronEntrySpec(name=name, worker="app.W", expression=expression, queue="cron", **kw)


async def job_minutes(pt: Powertools, name: str) -> list[datetime]:
    async with pt.db.connection() as conn:
        cur = await conn.execute(
            "SELECT meta->>'cron_at' AS at FROM oban_jobs WHERE meta->>'cron_name' = %s",
            (name,),
        )
        return sorted(datetime.fromisoformat(r["at"]) for r in await cur.fetchall())


async def has_jobs(pt: Powertools, name: str, count: int) -> bool:
    return len(await job_minutes(pt, name)) >= count


def loop_evaluated(node: Node, minute: datetime) -> bool:
    last = node.scheduler.last_evaluation
    return last is not None and last.minute == minute


async def test_two_nodes_racing_with_a_leader_change_claim_each_minute_once(
    pt: Powertools, db_url: str, nodes: list[Node]
) -> None:
    await declare(
        pt,
        spec("every_minute", "* * * * *"),
        spec("every_3", "*/3 * * * *", overlap_policy="queue_one"),
        spec("every_2_skip", "*/2 * * * *", overlap_policy="skip", catch_up_policy="all"),
    )
    clock = ManualClock(T0 + timedelta(seconds=5))
    a = await Node(db_url, "node-a", runtime(pt, clock)).start()
    nodes.append(a)
    await eventually(lambda: a.oban.is_leader)
    b = await Node(db_url, "node-b", runtime(pt, clock)).start()
    nodes.append(b)
    assert not b.oban.is_leader

    minutes = [T0 + i * MINUTE for i in range(30)]
    for i, minute in enumerate(minutes):
        if i == 15:
            await a.stop()  # the leader goes away; node-b's election takes over
            await eventually(lambda: b.oban.is_leader)
        clock.current = minute + timedelta(seconds=5)
        # Explicit evaluations from every running node race each other and the loops.
        live = [n for n in (a, b) if n.running]
        await asyncio.gather(*(n.scheduler.evaluate(now=clock.current) for n in live))
        # ... and the leader's own loop takes its turn at the same minute before the next.
        leader = next(n for n in live if n.oban.is_leader)
        await eventually(
            lambda leader=leader, minute=minute: loop_evaluated(leader, minute),
            what=f"the leader's loop at {minute}",
        )

    assert await job_minutes(pt, "every_minute") == minutes
    assert await job_minutes(pt, "every_3") == [T0]  # queue_one: T0 is still available
    assert await job_minutes(pt, "every_2_skip") == [T0]
    async with pt.db.connection() as conn:
        cur = await conn.execute(
            "SELECT entry_name, slot_at, count(*) AS n FROM powertools_cron_slots "
            "GROUP BY 1, 2 HAVING count(*) > 1"
        )
        assert await cur.fetchall() == []
        cur = await conn.execute(
            "SELECT entry_name, outcome, count(*) AS n FROM powertools_cron_slots "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        )
        counts = {(r["entry_name"], r["outcome"]): r["n"] for r in await cur.fetchall()}
        cur = await conn.execute("SELECT DISTINCT claimed_by FROM powertools_cron_slots")
        claimers = {r["claimed_by"] for r in await cur.fetchall()}
    assert counts == {
        ("every_2_skip", "enqueued"): 1,
        ("every_2_skip", "skipped_overlap"): 14,
        ("every_3", "deferred"): 1,
        ("every_3", "enqueued"): 1,
        ("every_3", "skipped_overlap"): 8,
        ("every_minute", "enqueued"): 30,
    }
    assert claimers <= {"node-a", "node-b"} and "node-b" in claimers


async def test_real_run_on_a_fast_clock_with_the_leader_stopping(
    pt: Powertools, db_url: str, nodes: list[Node]
) -> None:
    """Only the loops run here: oban's leadership decides who evaluates."""
    await declare(pt, spec("every_minute", "* * * * *", catch_up_policy="none"))
    clock = FastClock(T0 - timedelta(seconds=30), speed=120)  # a minute per 0.5 s
    a = await Node(db_url, "node-a", runtime(pt, clock)).start()
    nodes.append(a)
    await eventually(lambda: a.oban.is_leader)
    b = await Node(db_url, "node-b", runtime(pt, clock)).start()
    nodes.append(b)
    await eventually(lambda: has_jobs(pt, "every_minute", 4), within=30, what="4 minutes led by a")
    assert b.scheduler.last_evaluation is None  # not the leader: it never evaluated
    await a.stop()
    await eventually(lambda: b.oban.is_leader, within=30)
    led_by_a = len(await job_minutes(pt, "every_minute"))
    await eventually(
        lambda: has_jobs(pt, "every_minute", led_by_a + 4), within=30, what="4 minutes led by b"
    )
    await b.stop()

    minutes = await job_minutes(pt, "every_minute")
    assert len(minutes) >= 8
    # exactly one job per minute, and no minute missing across the handover
    assert minutes == [minutes[0] + i * MINUTE for i in range(len(minutes))]
    async with pt.db.connection() as conn:
        cur = await conn.execute(
            "SELECT node, first_minute, last_minute FROM powertools_scheduler_coverage "
            "ORDER BY first_minute"
        )
        coverage = await cur.fetchall()
    assert [c["node"] for c in coverage] == ["node-a", "node-b"]
    # the new leader continued right after the last minute the old one covered
    assert coverage[1]["first_minute"] <= coverage[0]["last_minute"] + MINUTE


async def test_the_loop_fires_late_minutes_within_grace_and_catches_up_beyond(
    db_url: str,
) -> None:
    async with Database(db_url) as db:
        async with db.transaction() as conn:
            await upsert_entry(conn, spec("every_minute", "* * * * *"))
        clock = ManualClock(T0 + timedelta(seconds=1))
        sched = CronScheduler(db, leader=Leader(), node="solo", clock=clock, poll_interval=0.02)
        await sched.start()
        try:

            async def evaluated(minute: datetime) -> None:
                clock.current = minute + timedelta(seconds=1)
                await eventually(
                    lambda: (
                        sched.last_evaluation is not None and sched.last_evaluation.minute == minute
                    )
                )

            await evaluated(T0)
            await evaluated(T0 + 3 * MINUTE)  # two ticks missed: late, not downtime
            await evaluated(T0 + 10 * MINUTE)  # six missed: beyond the 3-minute grace
        finally:
            await sched.stop()
        assert not sched.running
        async with db.connection() as conn:
            cur = await conn.execute(
                "SELECT slot_at, kind, outcome, detail FROM powertools_cron_slots ORDER BY slot_at"
            )
            found = [
                (r["slot_at"], r["kind"], r["outcome"], r["detail"].get("late", False))
                for r in await cur.fetchall()
            ]
    assert found == [
        (T0, "scheduled", "enqueued", False),
        (T0 + MINUTE, "scheduled", "enqueued", True),
        (T0 + 2 * MINUTE, "scheduled", "enqueued", True),
        (T0 + 3 * MINUTE, "scheduled", "enqueued", False),
        (T0 + 9 * MINUTE, "catch_up", "skipped_catch_up", False),
        (T0 + 10 * MINUTE, "scheduled", "enqueued", False),
    ]
