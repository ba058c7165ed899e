"""The cron scheduler and unique workers: a slot whose job would duplicate a pending job
of the same unique key is skipped, and fires again once that job is done."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from oban import Oban, worker
from psycopg_pool import AsyncConnectionPool

from oban_powertools.cron.entries import CronEntrySpec, upsert_entry
from oban_powertools.db import Database
from oban_powertools.runtime.instance import install_hooks
from oban_powertools.runtime.scheduler import CronScheduler

T0 = datetime(2031, 1, 6, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
WORKER = f"{__name__}.Rebuild"


@worker(
    queue="cron",
    unique={"period": "infinity", "fields": ["worker", "args"], "states": "incomplete"},
)
class Rebuild:
    async def process(self, job: Any) -> None:
        return None


class Leader:
    is_leader = True


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    async with Database(db_url) as database:
        yield database


async def rows(db: Database, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        cur = await conn.execute(sql, params)  # type: ignore[arg-type]
        return list(await cur.fetchall())


async def declare(db: Database, catch_up: str = "none") -> None:
    async with db.transaction() as conn:
        await upsert_entry(
            conn,
            CronEntrySpec(
                name="rebuild", worker=WORKER, expression="* * * * *", queue="cron",
                args={"index": "products"}, catch_up_policy=catch_up,
            ),
        )  # fmt: skip


async def test_a_slot_is_skipped_while_a_job_of_the_same_unique_key_is_pending(
    db: Database, db_url: str
) -> None:
    await declare(db)
    install_hooks()
    async with AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as pool:
        manual = await Oban(pool=pool, node="u", queues={}).enqueue(
            Rebuild.new({"index": "products"})
        )
    sched = CronScheduler(db, leader=Leader(), node="node-a")
    await sched.evaluate(now=T0 + timedelta(seconds=1))
    await sched.evaluate(now=T0 + MINUTE + timedelta(seconds=1))
    found = await rows(
        db, "SELECT outcome, job_id, detail FROM powertools_cron_slots ORDER BY slot_at"
    )
    assert [(s["outcome"], s["job_id"]) for s in found] == [("skipped_overlap", None)] * 2
    assert all(s["detail"]["unique_held_by"] == manual.id for s in found)
    assert await rows(db, "SELECT count(*) AS n FROM oban_jobs") == [{"n": 1}]

    # Once the manual job is done, its key is free and the next slot enqueues.
    await rows(db, "UPDATE oban_jobs SET state = 'completed' WHERE id = %s RETURNING id", manual.id)
    await sched.evaluate(now=T0 + 2 * MINUTE + timedelta(seconds=1))
    last = await rows(
        db, "SELECT outcome, job_id FROM powertools_cron_slots ORDER BY slot_at DESC LIMIT 1"
    )
    assert last[0]["outcome"] == "enqueued" and last[0]["job_id"] != manual.id
    (job,) = await rows(db, "SELECT meta FROM oban_jobs WHERE id = %s", last[0]["job_id"])
    assert job["meta"]["unique_key"] == manual.meta["unique_key"]  # the same key, held now


async def test_slots_of_one_chunk_do_not_duplicate_each_other(db: Database) -> None:
    # Catching up three minutes at once: the first slot's job takes the key, the next two
    # see it held (by a job of this very chunk) and are skipped.
    await declare(db, catch_up="all")
    sched = CronScheduler(db, leader=Leader(), node="node-a")
    await sched.evaluate(now=T0 + timedelta(seconds=1))
    await rows(db, "UPDATE oban_jobs SET state = 'completed' RETURNING id")
    await sched.evaluate(now=T0 + 3 * MINUTE + timedelta(seconds=1))
    found = await rows(
        db, "SELECT outcome, job_id, detail FROM powertools_cron_slots ORDER BY slot_at"
    )
    outcomes = [s["outcome"] for s in found]
    assert outcomes.count("enqueued") == 2, found  # T0, then the first caught-up minute
    held = [s for s in found if s["outcome"] == "skipped_overlap"]
    assert held and all(s["detail"]["unique_held_by"] > 0 for s in held)  # a real id
    assert await rows(db, "SELECT count(*) AS n FROM oban_jobs WHERE meta ? 'unique_key'") == [
        {"n": 1}
    ]
