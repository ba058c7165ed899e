"""The scheduler's set-based claiming: many slots per chunk in a few statements.

A chunk's decisions are made one slot at a time in Python and written together; the slots
claimed before are read under the entry locks first, so a decision after such a slot sees
it did not fire. These tests check the jobs and slot rows that come out, that the result
does not depend on how entries are chunked on a scenario with every policy, and that a
claimed slot never gets a second job.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from oban_powertools.cron.entries import (
    CronEntrySpec,
    enqueue_for_entry,
    job_meta,
    restart_evaluation,
    upsert_entry,
)
from oban_powertools.cron.expression import CronExpression
from oban_powertools.cron.firing import next_fire
from oban_powertools.cron.slots import plan_slots
from oban_powertools.cron.timezones import load_timezone
from oban_powertools.db import Database, oban_jobs
from oban_powertools.runtime import scheduler as scheduler_module
from oban_powertools.runtime.scheduler import CronScheduler, Evaluation
from tests.support.db import TEMPLATE, admin_execute, with_database

T0 = datetime(2031, 1, 6, 10, 0, tzinfo=UTC)  # a Monday
MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)


class Leader:
    is_leader = True


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    async with Database(db_url) as database:
        yield database


@pytest.fixture
def other_db_url(server_url: str, template_url: str) -> Iterator[str]:
    """A second migrated database, for running one scenario twice."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin_execute(server_url, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    try:
        yield with_database(server_url, name)
    finally:
        admin_execute(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def declare(db: Database, *specs: CronEntrySpec) -> None:
    async with db.transaction() as conn:
        for spec in specs:
            await upsert_entry(conn, spec)


async def rows(db: Database, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        cur = await conn.execute(sql, params)  # type: ignore[arg-type]
        return list(await cur.fetchall())


async def execute(db: Database, sql: str, *params: Any) -> None:
    async with db.connection() as conn:
        await conn.execute(sql, params)  # type: ignore[arg-type]


async def evaluate(
    sched: CronScheduler, at: datetime, live_from: datetime | None = None
) -> Evaluation:
    return await sched.evaluate(now=at + SECOND, live_from=live_from)


# -- many due entries -----------------------------------------------------------------------


async def test_a_busy_minute_gives_each_due_entry_one_job_like_enqueue_for_entry(
    db: Database, db_url: str
) -> None:
    queues = ["alpha", "beta", "gamma", "delta"]
    specs = [
        CronEntrySpec(
            name=f"busy_{i:03d}",
            worker=f"app.workers.W{i % 7}",
            expression="* * * * *",
            queue=queues[i % len(queues)],
            args={"n": i, "ratio": 1.5, "nested": {"tags": ["x"]}},
            priority=i % 10,
            max_attempts=1 + i % 25,
            tags=["Nightly", "nightly", f"T{i % 3}", "b"] if i % 2 else (),
            overlap_policy="allow",
        )
        for i in range(450)
    ]
    await declare(db, *specs)
    sched = CronScheduler(db, leader=Leader(), node="node-a")
    await evaluate(sched, T0)  # first look: each entry's first slot

    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as listener:
        await listener.execute(f'LISTEN "{oban_jobs.channel("public", "insert")}"')
        result = await evaluate(sched, T0 + MINUTE)
        # A marker sent after the evaluation committed arrives after its notifications.
        await listener.execute(
            "SELECT pg_notify(%s, 'done')", (oban_jobs.channel("public", "insert"),)
        )
        payloads = []
        async for note in listener.notifies():
            if note.payload == "done":
                break
            payloads.append(json.loads(note.payload))

    assert result.enqueued == 450 and result.locked == 450
    # Every queue woken in every chunk (of 200 entries) that inserted into it.
    chunks = [specs[i : i + 200] for i in range(0, len(specs), 200)]
    expected = sorted(q for chunk in chunks for q in {s.queue for s in chunk})
    assert sorted(p["queue"] for p in payloads) == expected

    jobs = await rows(
        db,
        "SELECT * FROM oban_jobs WHERE meta->>'cron_at' = %s ORDER BY id",
        (T0 + MINUTE).isoformat(),
    )
    assert len(jobs) == 450
    assert len({j["meta"]["cron_name"] for j in jobs}) == 450
    slots = {
        s["entry_name"]: s
        for s in await rows(
            db, "SELECT * FROM powertools_cron_slots WHERE slot_at = %s", T0 + MINUTE
        )
    }
    entries = {e["name"]: e for e in await rows(db, "SELECT * FROM powertools_cron_entries")}
    by_spec = {s.name: s for s in specs}
    for job in jobs:
        name = job["meta"]["cron_name"]
        spec = by_spec[name]
        assert slots[name]["job_id"] == job["id"]
        assert (slots[name]["kind"], slots[name]["outcome"]) == ("scheduled", "enqueued")
        assert slots[name]["detail"] == {} and slots[name]["claimed_by"] == "node-a"
        assert entries[name]["last_job_id"] == job["id"]
        assert entries[name]["last_slot_at"] == entries[name]["evaluated_through"] == T0 + MINUTE
        assert job["meta"] == job_meta(name, "* * * * *", T0 + MINUTE, "scheduled")
        assert job["state"] == "available" and job["queue"] == spec.queue
        assert job["worker"] == spec.worker and job["args"] == dict(spec.args)
        assert job["priority"] == spec.priority and job["max_attempts"] == spec.max_attempts
        assert job["tags"] == sorted({t.lower() for t in spec.tags})
        assert job["scheduled_at"] == job["inserted_at"]

    # Column for column what the slot-by-slot path inserts (rolled back: a probe only).
    columns = [c for c in jobs[0] if c not in ("id", "inserted_at", "scheduled_at")]
    async with db.connection() as conn:
        async with conn.transaction(force_rollback=True):
            for job in jobs[:12]:
                name = job["meta"]["cron_name"]
                job_id = await enqueue_for_entry(conn, "public", name, T0 + MINUTE, "scheduled")
                cur = await conn.execute("SELECT * FROM oban_jobs WHERE id = %s", (job_id,))
                probe = await cur.fetchone()
                assert probe is not None
                assert {c: probe[c] for c in columns} == {c: job[c] for c in columns}
                assert probe["scheduled_at"] == probe["inserted_at"]


# -- a slot claimed before ---------------------------------------------------------------------


async def test_a_chunk_meeting_a_claimed_slot_skips_exactly_that_slot(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await declare(
        db,
        CronEntrySpec(
            name="rewound",
            worker="app.W",
            expression="* * * * *",
            queue="cron",
            overlap_policy="skip",
            catch_up_policy="all",
        ),
        *(
            CronEntrySpec(name=f"other_{i}", worker="app.W", expression="* * * * *", queue="cron")
            for i in range(5)
        ),
    )
    sched = CronScheduler(db, leader=Leader(), node="node-a")
    await evaluate(sched, T0)
    (first,) = await rows(
        db, "SELECT id FROM oban_jobs WHERE meta->>'cron_name' = 'rewound' ORDER BY id"
    )
    # T0's run is over; then evaluated_through is moved back before T0, so T0 is planned
    # again (as a catch-up) although its slot was claimed.
    await execute(db, "UPDATE oban_jobs SET state = 'completed', completed_at = now()")
    await execute(
        db,
        "UPDATE powertools_cron_entries SET evaluated_through = %s WHERE name = 'rewound'",
        T0 - MINUTE,
    )

    with caplog.at_level(logging.INFO, logger=scheduler_module.__name__):
        result = await evaluate(sched, T0 + MINUTE)
    # Decided in the chunk's one pass: nothing was rolled back and retried.
    assert "retrying one by one" not in caplog.text

    # Had T0 been taken as fired, it would have a second job and T0+1 would be skipped for
    # overlapping with it. T0 is seen as claimed and T0+1 runs.
    found = await rows(
        db,
        "SELECT slot_at, kind, outcome, job_id FROM powertools_cron_slots "
        "WHERE entry_name = 'rewound' ORDER BY slot_at",
    )
    jobs = await rows(
        db,
        "SELECT id, meta->>'cron_at' AS at FROM oban_jobs "
        "WHERE meta->>'cron_name' = 'rewound' ORDER BY id",
    )
    assert [j["at"] for j in jobs] == [T0.isoformat(), (T0 + MINUTE).isoformat()]
    assert jobs[0]["id"] == first["id"]
    assert [(s["slot_at"], s["kind"], s["outcome"], s["job_id"]) for s in found] == [
        (T0, "scheduled", "enqueued", first["id"]),
        (T0 + MINUTE, "scheduled", "enqueued", jobs[1]["id"]),
    ]
    # The rest of the chunk was claimed as usual, once.
    assert result.enqueued == 6 and result.skipped == 0 and result.failed == []
    per_slot = await rows(
        db,
        "SELECT meta->>'cron_name' AS name, meta->>'cron_at' AS at, count(*) AS n "
        "FROM oban_jobs GROUP BY 1, 2",
    )
    assert len(per_slot) == 12 and {r["n"] for r in per_slot} == {1}
    (entry,) = await rows(db, "SELECT * FROM powertools_cron_entries WHERE name = 'rewound'")
    assert entry["last_job_id"] == jobs[1]["id"]
    assert entry["evaluated_through"] == T0 + MINUTE


async def test_a_claimed_slot_the_shortcut_cannot_see_is_found_by_deciding_again(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A history edited by hand: a minute claimed (skipped) beyond evaluated_through, which
    no scheduler write leaves behind. The chunk meets it on insert, rolls back, and is
    decided again with every slot looked up: the minute keeps its one row, no entry fails."""
    await declare(
        db,
        CronEntrySpec(name="edited", worker="app.W", expression="* * * * *", queue="cron"),
        CronEntrySpec(name="plain", worker="app.W", expression="* * * * *", queue="cron"),
    )
    sched = CronScheduler(db, leader=Leader(), node="node-a")
    await evaluate(sched, T0)
    await execute(
        db,
        "INSERT INTO powertools_cron_slots (entry_name, slot_at, kind, outcome, claimed_by, "
        "detail) VALUES ('edited', %s, 'scheduled', 'skipped_overlap', 'by-hand', '{}')",
        T0 + MINUTE,
    )
    with caplog.at_level(logging.INFO, logger=scheduler_module.__name__):
        result = await evaluate(sched, T0 + MINUTE)
    assert "deciding the chunk again" in caplog.text
    assert "retrying one by one" not in caplog.text
    assert result.failed == [] and result.enqueued == 1  # plain's minute; edited's was taken
    slots = await rows(
        db,
        "SELECT entry_name, outcome, claimed_by FROM powertools_cron_slots "
        "WHERE slot_at = %s ORDER BY entry_name",
        T0 + MINUTE,
    )
    assert [(s["entry_name"], s["outcome"], s["claimed_by"]) for s in slots] == [
        ("edited", "skipped_overlap", "by-hand"),
        ("plain", "enqueued", "node-a"),
    ]


# -- the same result however the entries are chunked ------------------------------------------

POLICIES = ("allow", "skip", "queue_one", "cancel_previous")


def scenario_specs() -> list[CronEntrySpec]:
    specs = []
    for i, (overlap, catch_up, expression, zone) in enumerate(
        (o, c, e, z)
        for o in POLICIES
        for c in ("none", "latest", "all")
        for e in ("* * * * *", "*/2 * * * *", "1-59/3 * * * *")
        for z in ("Etc/UTC", "Asia/Kolkata")
    ):
        specs.append(
            CronEntrySpec(
                name=f"e{i:03d}_{overlap}_{catch_up}",
                worker=f"app.workers.W{i % 5}",
                expression=expression,
                timezone=zone,
                queue=f"q{i % 3}",
                args={"i": i, "f": 0.25},
                overlap_policy=overlap,
                catch_up_policy=catch_up,
                max_catch_up=2 + i % 3,
                priority=i % 4,
                max_attempts=3 + i % 5,
                tags=["Cron", f"group{i % 2}"],
            )
        )
    return specs


async def run_scenario(db: Database, chunk_size: int) -> list[tuple[int, ...]]:
    """Minutes with everything the scheduler decides: first looks, late minutes, downtime
    with catch-up, overlaps, follow-ups released, replaced runs (one executing), an entry
    redefined in a minute it already fired, and a pause."""
    specs = scenario_specs()
    await declare(db, *specs)
    sched = CronScheduler(db, leader=Leader(), node="node-a", chunk_size=chunk_size)
    counts: list[tuple[int, ...]] = []

    async def step(at: datetime, live_from: datetime | None = None) -> None:
        ev = await evaluate(sched, at, live_from)
        counts.append(
            (
                ev.examined,
                ev.locked,
                ev.enqueued,
                ev.skipped,
                ev.deferred,
                ev.replaced,
                ev.follow_ups,
                len(ev.failed),
            )
        )

    await step(T0)
    await step(T0 + MINUTE)
    await step(T0 + 3 * MINUTE, live_from=T0 + 2 * MINUTE)  # one late minute
    # Half of the entries' runs finish: their queue_one follow-ups are released.
    await execute(
        db,
        "UPDATE oban_jobs SET state = 'completed', completed_at = now() "
        "WHERE (meta->>'cron_name') ~ '^e[0-9]*[02468]_'",
    )
    await step(T0 + 4 * MINUTE)
    # A cancel_previous run is executing when it is replaced: signalled, not cancelled.
    await execute(
        db,
        "UPDATE oban_jobs SET state = 'executing', attempt = 1, attempted_at = now() "
        "WHERE id IN (SELECT max(id) FROM oban_jobs "
        "WHERE meta->>'cron_name' LIKE '%%cancel_previous%%' AND state = 'available' "
        "GROUP BY meta->>'cron_name')",
    )
    await step(T0 + 12 * MINUTE)  # downtime: catch-up per policy
    await execute(db, "UPDATE oban_jobs SET state = 'completed' WHERE state = 'available'")
    # Redefined in a minute it already fired (its evaluation starts over), and another
    # entry paused: the next evaluation of the same minute meets the claimed slot.
    async with db.transaction() as conn:
        await restart_evaluation(conn, [specs[0].name, specs[30].name])
        await conn.execute(
            "UPDATE powertools_cron_entries SET paused = true, paused_at = now() WHERE name = %s",
            (specs[5].name,),
        )
    await step(T0 + 12 * MINUTE + 30 * SECOND)
    await step(T0 + 13 * MINUTE)
    await step(T0 + 16 * MINUTE, live_from=T0 + 14 * MINUTE)
    return counts


async def snapshot(db: Database) -> dict[str, Any]:
    """The scheduler's writes, with job ids replaced by the (entry, minute) they run."""
    jobs = await rows(db, "SELECT * FROM oban_jobs ORDER BY id")
    key = {j["id"]: (j["meta"]["cron_name"], j["meta"]["cron_at"]) for j in jobs}

    def keys(ids: list[int]) -> list[tuple[str, str]]:
        return [key[i] for i in ids]

    def job(j: dict[str, Any]) -> tuple[Any, ...]:
        meta = dict(j["meta"])
        cancel_attempted = meta.pop("cancel_attempted_at", None) is not None
        return (
            key[j["id"]],
            j["state"],
            j["queue"],
            j["worker"],
            j["attempt"],
            j["max_attempts"],
            j["priority"],
            j["args"],
            meta,
            cancel_attempted,
            j["tags"],
            j["errors"],
            j["cancelled_at"] is not None,
            j["scheduled_at"] == j["inserted_at"],
        )

    def slot(s: dict[str, Any]) -> tuple[Any, ...]:
        detail = dict(s["detail"])
        for name in ("active_jobs", "cancelled_jobs"):
            if name in detail:
                detail[name] = keys(detail[name])
        if "released_at" in detail:
            detail["released_at"] = True
        job_key = None if s["job_id"] is None else key[s["job_id"]]
        return (s["entry_name"], s["slot_at"], s["kind"], s["outcome"], job_key, detail)

    slots = await rows(db, "SELECT * FROM powertools_cron_slots ORDER BY entry_name, slot_at")
    entries = await rows(db, "SELECT * FROM powertools_cron_entries ORDER BY name")
    return {
        "jobs": sorted(job(j) for j in jobs),
        "slots": [slot(s) for s in slots],
        "entries": [
            (
                e["name"],
                e["evaluated_through"],
                e["last_slot_at"],
                None if e["last_job_id"] is None else key[e["last_job_id"]],
                e["follow_up_slot_at"],
                e["version"],
            )
            for e in entries
        ],
    }


async def test_claiming_writes_the_same_whether_entries_share_a_chunk_or_not(
    db: Database,
    other_db_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 17 entries a chunk: jobs, notifications, cancellations and slot rows of different
    # entries written together, and placeholders resolved across them.
    with caplog.at_level(logging.INFO, logger=scheduler_module.__name__):
        batched_counts = await run_scenario(db, chunk_size=17)
    # The redefined entries met their claimed slots without a rollback.
    assert "retrying one by one" not in caplog.text
    batched = await snapshot(db)

    # One entry a chunk: nothing of one entry can leak into another's decisions.
    async with Database(other_db_url) as other:
        single_counts = await run_scenario(other, chunk_size=1)
        single = await snapshot(other)

    assert batched_counts == single_counts
    assert batched["entries"] == single["entries"]
    assert batched["slots"] == single["slots"]
    assert batched["jobs"] == single["jobs"]
    # The scenario reached every decision (so the comparison covers them).
    outcomes = {s[3] for s in batched["slots"]}
    assert outcomes == {
        "enqueued",
        "skipped_overlap",
        "deferred",
        "replaced_previous",
        "skipped_catch_up",
    }
    assert any(s[4] is not None and "released_at" in s[5] for s in batched["slots"])
    assert any(s[2] == "catch_up" and s[4] is not None for s in batched["slots"])
    assert any(s[5].get("late") for s in batched["slots"])
    assert {j[1] for j in batched["jobs"]} >= {"cancelled", "executing", "completed"}
    assert sum(c[6] for c in batched_counts) > 0  # follow-ups released


# -- the planner's shortcut ----------------------------------------------------------------------


def test_plan_slots_with_the_cached_first_due_minute_plans_the_same() -> None:
    rng = random.Random(20310106)
    expressions = [
        "* * * * *",
        "*/7 * * * *",
        "0 * * * *",
        "30 2 * * *",
        "30 1 * * *",
        "15 9-17 * * 1-5",
        "0 0 1 * *",
    ]
    zones = ["Etc/UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe"]
    # Around the 2025 DST changes as well as ordinary days.
    anchors = [
        datetime(2025, 3, 9, 6, 0, tzinfo=UTC),
        datetime(2025, 3, 30, 0, 30, tzinfo=UTC),
        datetime(2025, 11, 2, 5, 0, tzinfo=UTC),
        datetime(2025, 4, 5, 14, 0, tzinfo=UTC),
        T0,
    ]
    checked = 0
    for _ in range(3000):
        expression, zone = rng.choice(expressions), rng.choice(zones)
        expr, tz = CronExpression.parse(expression), load_timezone(zone)
        now = rng.choice(anchors) + rng.randrange(0, 26 * 60) * MINUTE
        through = now - rng.choice([1, 2, 5, 59, 60, 61, 300, 1440, 3000]) * MINUTE
        live_from = now - rng.choice([0, 0, 1, 3, 10]) * MINUTE
        updated_at = rng.choice([None, through - MINUTE, now - 2 * MINUTE + 7 * SECOND])
        kwargs: dict[str, Any] = {
            "evaluated_through": through,
            "updated_at": updated_at,
            "now_minute": now,
            "live_from": live_from,
            "catch_up_policy": rng.choice(["none", "latest", "all"]),
            "max_catch_up": rng.choice([1, 2, 10]),
        }
        first_due = next_fire(expr, tz, through)
        assert plan_slots(expr, tz, **kwargs) == plan_slots(
            expr, tz, first_due=first_due, **kwargs
        ), (expression, zone, kwargs)
        checked += first_due is not None and first_due <= now
    assert checked > 500
