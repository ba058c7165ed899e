"""The cron scheduler's decisions against a real PostgreSQL, driven with explicit ``now``.

Every test evaluates minute by minute (or jumps, to simulate downtime) instead of
sleeping, and checks the slots and jobs the database ends up with.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from oban_powertools import Powertools
from oban_powertools.cron.declarations import sync_declarations
from oban_powertools.cron.entries import (
    CronEntryError,
    CronEntrySpec,
    pause_entry,
    upsert_entry,
)
from oban_powertools.db import Database
from oban_powertools.errors import CronExpressionError, CronTimezoneError
from oban_powertools.runtime.scheduler import CronScheduler
from oban_powertools.seams import Principal
from tests.support.seams import OPERATOR, make_powertools
from tests.support.waiting import eventually

T0 = datetime(2031, 1, 6, 10, 0, tzinfo=UTC)  # a Monday, safely in the future
MINUTE = timedelta(minutes=1)


class Leader:
    is_leader = True


@pytest.fixture
async def pt(db_url: str) -> AsyncIterator[Powertools]:
    powertools = make_powertools(db_url)
    async with powertools:
        yield powertools


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    async with Database(db_url) as database:
        yield database


def scheduler(db: Database, node: str = "node-a") -> CronScheduler:
    return CronScheduler(db, leader=Leader(), node=node)


def spec(name: str = "nightly_sync", expression: str = "* * * * *", **kw: Any) -> CronEntrySpec:
    kw.setdefault("queue", "cron")
    return CronEntrySpec(name=name, worker="app.workers.NightlySync", expression=expression, **kw)


async def declare(db: Database, *specs: CronEntrySpec) -> None:
    async with db.transaction() as conn:
        for s in specs:
            await upsert_entry(conn, s)


async def rows(db: Database, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        cur = await conn.execute(sql, params)  # type: ignore[arg-type]
        return list(await cur.fetchall())


async def job_minutes(db: Database, name: str = "nightly_sync") -> list[datetime]:
    found = await rows(
        db, "SELECT meta->>'cron_at' AS at FROM oban_jobs WHERE meta->>'cron_name' = %s", name
    )
    return sorted(datetime.fromisoformat(r["at"]) for r in found)


async def slots(db: Database, name: str = "nightly_sync") -> list[dict[str, Any]]:
    return await rows(
        db,
        "SELECT slot_at, kind, outcome, job_id, detail, claimed_by FROM powertools_cron_slots "
        "WHERE entry_name = %s ORDER BY slot_at, id",
        name,
    )


async def entry(db: Database, name: str = "nightly_sync") -> dict[str, Any]:
    (row,) = await rows(db, "SELECT * FROM powertools_cron_entries WHERE name = %s", name)
    return row


async def run(sched: CronScheduler, minutes: Sequence[datetime]) -> None:
    for minute in minutes:
        await sched.evaluate(now=minute + timedelta(seconds=1))


def span(first: datetime, last: datetime) -> list[datetime]:
    return [first + i * MINUTE for i in range(int((last - first) / MINUTE) + 1)]


async def finish_jobs(db: Database, name: str = "nightly_sync") -> None:
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE oban_jobs SET state = 'completed', completed_at = now() "
            "WHERE meta->>'cron_name' = %s AND state <> 'completed'",
            (name,),
        )


# -- the basics ----------------------------------------------------------------------------


async def test_new_entry_starts_now_and_fires_each_due_minute_once(db: Database) -> None:
    await declare(db, spec(expression="*/5 * * * *"))
    sched = scheduler(db)
    await run(sched, span(T0 - 3 * MINUTE, T0 + 12 * MINUTE))
    await run(sched, span(T0, T0 + 12 * MINUTE))  # evaluating again changes nothing

    # no backfill before the first evaluation (T0 - 3); every due minute after it, once
    assert await job_minutes(db) == [T0, T0 + 5 * MINUTE, T0 + 10 * MINUTE]
    found = await slots(db)
    assert [(s["kind"], s["outcome"]) for s in found] == [("scheduled", "enqueued")] * 3
    assert all(s["job_id"] and s["claimed_by"] == "node-a" for s in found)
    row = await entry(db)
    assert row["last_slot_at"] == T0 + 10 * MINUTE
    assert row["last_job_id"] == found[-1]["job_id"]
    job = (await rows(db, "SELECT * FROM oban_jobs WHERE id = %s", found[-1]["job_id"]))[0]
    assert job["worker"] == "app.workers.NightlySync" and job["queue"] == "cron"
    assert job["meta"]["cron_slot_kind"] == "scheduled" and job["meta"]["cron"] is True


async def test_evaluated_through_is_only_written_for_entries_with_work(db: Database) -> None:
    await declare(db, spec("hourly", "0 * * * *"), spec("minutely", "* * * * *"))
    sched = scheduler(db)
    await run(sched, [T0 + MINUTE])  # first look: both start here
    await run(sched, span(T0 + 2 * MINUTE, T0 + 5 * MINUTE))
    assert (await entry(db, "hourly"))["evaluated_through"] == T0 + MINUTE
    assert (await entry(db, "minutely"))["evaluated_through"] == T0 + 5 * MINUTE
    await run(sched, span(T0 + 6 * MINUTE, T0 + 60 * MINUTE))
    assert await job_minutes(db, "hourly") == [T0 + 60 * MINUTE]


async def test_downtime_is_caught_up_per_policy(db: Database) -> None:
    await declare(
        db,
        spec("none", catch_up_policy="none"),
        spec("latest", catch_up_policy="latest"),
        spec("all", catch_up_policy="all", max_catch_up=3),
    )
    sched = scheduler(db)
    await run(sched, [T0])
    await run(sched, [T0 + 10 * MINUTE])  # nobody looked at T0+1 .. T0+9

    assert await job_minutes(db, "none") == [T0, T0 + 10 * MINUTE]
    assert await job_minutes(db, "latest") == [T0, T0 + 9 * MINUTE, T0 + 10 * MINUTE]
    assert await job_minutes(db, "all") == [T0] + span(T0 + 7 * MINUTE, T0 + 10 * MINUTE)
    skipped = [s for s in await slots(db, "none") if s["outcome"] == "skipped_catch_up"]
    assert [(s["slot_at"], s["job_id"]) for s in skipped] == [(T0 + 9 * MINUTE, None)]
    assert skipped[0]["detail"]["gap_from"] == (T0 + MINUTE).isoformat()
    dropped = [s for s in await slots(db, "all") if s["outcome"] == "skipped_catch_up"]
    assert [s["slot_at"] for s in dropped] == [T0 + 6 * MINUTE]
    assert dropped[0]["detail"]["older_dropped"] is True
    kinds = [s["kind"] for s in await slots(db, "all") if s["job_id"]]
    assert kinds == ["scheduled", "catch_up", "catch_up", "catch_up", "scheduled"]


# -- pause and resume through the pipeline ---------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "expected_catch_up"),
    [
        ("none", []),
        ("latest", [T0 + 6 * MINUTE]),
        ("all", [T0 + 4 * MINUTE, T0 + 5 * MINUTE, T0 + 6 * MINUTE]),
    ],
)
async def test_paused_nightly_sync_claims_nothing_until_resumed(
    pt: Powertools, db: Database, policy: str, expected_catch_up: list[datetime]
) -> None:
    await declare(db, spec(catch_up_policy=policy, max_catch_up=3))
    sched = scheduler(db)
    await run(sched, [T0])

    await pt.operator.pause_cron_entry(OPERATOR, "nightly_sync", reason="upstream outage")
    await run(sched, span(T0 + MINUTE, T0 + 6 * MINUTE))
    assert await job_minutes(db) == [T0]
    assert [s["slot_at"] for s in await slots(db)] == [T0]  # no slot claimed while paused
    coverage = await rows(db, "SELECT * FROM powertools_scheduler_coverage")
    assert [(c["first_minute"], c["last_minute"]) for c in coverage] == [(T0, T0 + 6 * MINUTE)]

    await pt.operator.resume_cron_entry(OPERATOR, "nightly_sync", reason="upstream is back")
    await run(sched, [T0 + 7 * MINUTE])
    assert await job_minutes(db) == [T0, *expected_catch_up, T0 + 7 * MINUTE]
    outcomes = {s["slot_at"]: (s["kind"], s["outcome"]) for s in await slots(db)}
    assert outcomes[T0 + 7 * MINUTE] == ("scheduled", "enqueued")
    for minute in expected_catch_up:
        assert outcomes[minute] == ("catch_up", "enqueued")
    if policy == "none":
        assert outcomes[T0 + 6 * MINUTE] == ("catch_up", "skipped_catch_up")
    if policy == "all":
        assert outcomes[T0 + 3 * MINUTE] == ("catch_up", "skipped_catch_up")


async def test_a_pause_committed_during_evaluation_wins(db: Database) -> None:
    await declare(db, spec())
    sched = scheduler(db)
    await run(sched, [T0])
    async with db.transaction() as conn:
        await pause_entry(conn, "nightly_sync", Principal("x", "user", "X"), "hold", None)
        # The scheduler read the entry as unpaused and now waits for the row lock.
        evaluation = asyncio.create_task(sched.evaluate(now=T0 + MINUTE))

        async def blocked_on_our_lock() -> bool:
            # Inside a transaction pg_stat_activity is a snapshot: take a new one each time.
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            cur = await conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
            )
            return await cur.fetchone() is not None

        await eventually(blocked_on_our_lock, what="the evaluation waits for the entry's lock")
        assert not evaluation.done()
    result = await evaluation
    assert result.locked == 1 and result.enqueued == 0
    assert await job_minutes(db) == [T0]


async def test_expired_pause_is_resumed_by_the_system_and_audited(
    pt: Powertools, db: Database
) -> None:
    await declare(db, spec(catch_up_policy="latest"))
    sched = scheduler(db)
    await run(sched, [T0 - MINUTE])
    await pt.operator.pause_cron_entry(
        OPERATOR, "nightly_sync", reason="maintenance window", expires_in_minutes=5
    )
    version = (await entry(db))["version"]

    result = await sched.evaluate(now=T0 + 30 * timedelta(seconds=1))  # long after expiry
    assert result.resumed == ["nightly_sync"]
    row = await entry(db)
    assert row["paused"] is False and row["pause_expires_at"] is None
    assert row["version"] == version + 1
    (event,) = await rows(db, "SELECT * FROM powertools_audit_events WHERE action = 'cron.resumed'")
    assert event["command"] == "resume_cron_entry" and event["surface"] == "system"
    assert event["principal_id"] == "system" and event["principal_type"] == "system"
    assert event["reason"] == "pause expired" and event["outcome"] == "succeeded"
    assert event["before"]["paused"] is True and event["after"]["paused"] is False
    assert event["resource_type"] == "cron_entry" and event["resource_id"] == "nightly_sync"
    # resumed in the same evaluation: the current minute runs, T0-1 .. T0-1 had nothing
    assert await job_minutes(db) == [T0 - MINUTE, T0]
    assert (await sched.evaluate(now=T0 + 2 * MINUTE)).resumed == []


# -- overlap policies ------------------------------------------------------------------------


async def test_overlap_allow_enqueues_while_a_run_is_active(db: Database) -> None:
    await declare(db, spec(overlap_policy="allow"))
    await run(scheduler(db), span(T0, T0 + 2 * MINUTE))
    assert await job_minutes(db) == span(T0, T0 + 2 * MINUTE)


async def test_overlap_skip(db: Database) -> None:
    await declare(db, spec(overlap_policy="skip"))
    sched = scheduler(db)
    await run(sched, span(T0, T0 + 2 * MINUTE))
    assert await job_minutes(db) == [T0]
    outcomes = [(s["outcome"], s["job_id"]) for s in await slots(db)]
    assert outcomes[1:] == [("skipped_overlap", None), ("skipped_overlap", None)]
    await finish_jobs(db)
    await run(sched, [T0 + 3 * MINUTE])
    assert await job_minutes(db) == [T0, T0 + 3 * MINUTE]


async def test_overlap_skip_sees_active_jobs_other_than_the_last(db: Database) -> None:
    await declare(db, spec(overlap_policy="skip"))
    sched = scheduler(db)
    await run(sched, [T0])
    (first,) = await rows(db, "SELECT id FROM oban_jobs")
    # A run-now job becomes the entry's last job and finishes; the scheduled one is
    # still being retried.
    async with db.connection() as conn:
        await conn.execute("UPDATE oban_jobs SET state = 'retryable' WHERE id = %s", (first["id"],))
        cur = await conn.execute(
            "INSERT INTO oban_jobs (worker, queue, state, meta) VALUES "
            "('app.workers.NightlySync', 'cron', 'completed', '{\"cron_name\": \"nightly_sync\"}') "
            "RETURNING id"
        )
        done = (await cur.fetchone())["id"]  # type: ignore[index]
        await conn.execute(
            "UPDATE powertools_cron_entries SET last_job_id = %s WHERE name = 'nightly_sync'",
            (done,),
        )
    await run(sched, [T0 + MINUTE])
    assert (await slots(db))[-1]["outcome"] == "skipped_overlap"


async def test_overlap_queue_one_defers_one_follow_up(db: Database) -> None:
    await declare(db, spec(overlap_policy="queue_one"))
    sched = scheduler(db)
    await run(sched, span(T0, T0 + 3 * MINUTE))
    assert await job_minutes(db) == [T0]
    outcomes = [s["outcome"] for s in await slots(db)]
    assert outcomes == ["enqueued", "deferred", "skipped_overlap", "skipped_overlap"]
    assert (await entry(db))["follow_up_slot_at"] == T0 + MINUTE

    await finish_jobs(db)
    result = await sched.evaluate(now=T0 + 3 * MINUTE + timedelta(seconds=30))
    assert result.follow_ups == 1  # checked each evaluation, even with nothing due
    assert await job_minutes(db) == [T0, T0 + MINUTE]
    deferred = (await slots(db))[1]
    assert deferred["outcome"] == "enqueued" and deferred["job_id"] is not None
    assert "released_at" in deferred["detail"]
    assert (await entry(db))["follow_up_slot_at"] is None

    # the follow-up run is active now: the next due minute is deferred again
    await run(sched, [T0 + 4 * MINUTE])
    assert (await slots(db))[-1]["outcome"] == "deferred"


async def test_overlap_cancel_previous(db: Database) -> None:
    await declare(db, spec(overlap_policy="cancel_previous"))
    sched = scheduler(db)
    await run(sched, span(T0, T0 + 2 * MINUTE))
    jobs = await rows(
        db,
        "SELECT id, state::text AS state FROM oban_jobs WHERE meta->>'cron_name' = "
        "'nightly_sync' ORDER BY id",
    )
    assert [j["state"] for j in jobs] == ["cancelled", "cancelled", "available"]
    found = await slots(db)
    assert [s["outcome"] for s in found] == ["enqueued", "replaced_previous", "replaced_previous"]
    assert found[1]["detail"]["cancelled_jobs"] == [jobs[0]["id"]]
    assert found[2]["detail"]["cancelled_jobs"] == [jobs[1]["id"]]


# -- time zones --------------------------------------------------------------------------------


async def test_dst_one_job_per_wall_clock_occurrence(db: Database) -> None:
    await declare(
        db,
        spec("fall_back", "30 1 * * *", timezone="America/New_York"),
        spec("spring_forward", "30 2 * * *", timezone="America/New_York"),
        spec("berlin_hourly", "15 * * * *", timezone="Europe/Berlin"),
    )
    sched = scheduler(db)
    # 2025-03-09: 02:30 does not exist in New York; it runs once, at 03:00 EDT.
    march = datetime(2025, 3, 9, 6, 50, tzinfo=UTC)
    await run(sched, span(march, march + 70 * MINUTE))
    assert await job_minutes(db, "spring_forward") == [datetime(2025, 3, 9, 7, 0, tzinfo=UTC)]
    # 2025-11-02: 01:30 EDT (05:30 UTC) and 01:30 EST (06:30 UTC) are the same wall time.
    november = datetime(2025, 11, 2, 4, 50, tzinfo=UTC)
    await run(sched, span(november, november + 130 * MINUTE))
    assert await job_minutes(db, "fall_back") == [datetime(2025, 11, 2, 5, 30, tzinfo=UTC)]
    # every wall-clock hour in Berlin, each once
    assert len(await job_minutes(db, "berlin_hourly")) == 2 + 1


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"expression": "61 * * * *"}, CronExpressionError, "minute field: 61 is out of range"),
        ({"expression": "0 0 31 2 *"}, CronExpressionError, "never matches"),
        ({"timezone": "Mars/Olympus_Mons"}, CronTimezoneError, "unknown time zone"),
        ({"timezone": "../etc/passwd"}, CronTimezoneError, "unknown time zone"),
        ({"overlap_policy": "sometimes"}, CronEntryError, "unknown overlap policy"),
    ],
)
async def test_invalid_definitions_are_rejected_before_anything_is_written(
    db: Database, changes: dict[str, str], error: type[Exception], message: str
) -> None:
    settings = {"expression": "* * * * *", "timezone": "Etc/UTC", **changes}
    with pytest.raises(error, match=message):
        await declare(db, spec(**settings))  # type: ignore[arg-type]
    assert await rows(db, "SELECT name FROM powertools_cron_entries") == []
    await run(scheduler(db), [T0])
    assert await rows(db, "SELECT id FROM oban_jobs") == []


# -- coverage and scale ---------------------------------------------------------------------------


async def test_coverage_records_contiguous_spans_per_node(db: Database) -> None:
    await declare(db, spec("hourly", "0 * * * *"))
    a, b = scheduler(db, "node-a"), scheduler(db, "node-b")
    await run(a, span(T0, T0 + 3 * MINUTE))
    await run(a, [T0 + 3 * MINUTE])  # the same minute again: still one span
    await run(b, span(T0 + 4 * MINUTE, T0 + 5 * MINUTE))
    await run(a, [T0 + 9 * MINUTE])  # a gap: nobody looked at T0+6 .. T0+8
    coverage = await rows(
        db,
        "SELECT node, first_minute, last_minute FROM powertools_scheduler_coverage "
        "ORDER BY first_minute",
    )
    assert [(c["node"], c["first_minute"], c["last_minute"]) for c in coverage] == [
        ("node-a", T0, T0 + 3 * MINUTE),
        ("node-b", T0 + 4 * MINUTE, T0 + 5 * MINUTE),
        ("node-a", T0 + 9 * MINUTE, T0 + 9 * MINUTE),
    ]


async def test_ten_thousand_entries_with_nothing_due(db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO powertools_cron_entries (name, source, worker, expression, timezone, "
            "evaluated_through) SELECT 'entry_' || i, 'runtime', 'app.W', "
            "(i %% 60) || ' 3 * * *', CASE WHEN i %% 2 = 0 THEN 'Etc/UTC' "
            "ELSE 'America/Chicago' END, %s FROM generate_series(1, 10000) AS i",
            (T0 - MINUTE,),
        )
    sched = scheduler(db)
    cold = await sched.evaluate(now=T0)
    warm = await sched.evaluate(now=T0 + MINUTE)
    print(
        f"\n10k entries, nothing due: cold {cold.seconds * 1000:.0f} ms, "
        f"warm {warm.seconds * 1000:.0f} ms"
    )
    assert cold.examined == warm.examined == 10_000
    assert cold.locked == warm.locked == 0
    assert await rows(db, "SELECT id FROM oban_jobs") == []


async def test_many_due_entries_are_claimed_in_chunks(db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO powertools_cron_entries (name, source, worker, expression, "
            "evaluated_through) SELECT 'due_' || i, 'runtime', 'app.W', '* * * * *', %s "
            "FROM generate_series(1, 450) AS i",
            (T0 - MINUTE,),
        )
    started = time.perf_counter()
    result = await scheduler(db).evaluate(now=T0)
    print(f"\n450 due entries: {time.perf_counter() - started:.2f} s")
    assert result.enqueued == 450 and result.locked == 450
    (count,) = await rows(db, "SELECT count(DISTINCT meta->>'cron_name') AS n FROM oban_jobs")
    assert count["n"] == 450


# -- syncing code declarations ---------------------------------------------------------------


async def test_sync_declarations_is_idempotent_and_keeps_pause_and_history(
    pt: Powertools, db: Database
) -> None:
    nightly = spec(expression="0 3 * * *")
    async with db.connection() as conn:
        first = await sync_declarations(conn, [nightly, spec("hourly", "@hourly")])
        again = await sync_declarations(conn, [spec("hourly", "@hourly"), nightly])
    assert first.created == ["hourly", "nightly_sync"] and first.updated == []
    assert again.unchanged == ["hourly", "nightly_sync"] and again.created == again.updated == []

    await run(scheduler(db), [T0])
    await pt.operator.pause_cron_entry(OPERATOR, "nightly_sync", reason="hold it")
    version = (await entry(db))["version"]
    async with db.connection() as conn:
        queue_only = await sync_declarations(conn, [spec(expression="0 3 * * *", queue="q2")])
    assert queue_only.updated == ["nightly_sync"]
    row = await entry(db)
    assert row["paused"] and row["queue"] == "q2" and row["version"] == version + 1
    assert row["evaluated_through"] == T0  # same schedule: its evaluation stands

    async with db.connection() as conn:
        await sync_declarations(conn, [spec(expression="0 4 * * *", queue="q2")])
    row = await entry(db)
    assert row["paused"] and row["expression"] == "0 4 * * *"
    assert row["evaluated_through"] is None  # a new schedule starts over from now
