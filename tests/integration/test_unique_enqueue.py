"""Unique enqueue against a real database: one row however the duplicates arrive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from oban import Oban, worker
from psycopg_pool import AsyncConnectionPool

from oban_powertools import UniqueOptionError
from oban_powertools.runtime import Runtime
from tests.support.seams import make_powertools


@worker(queue="sync", unique={"period": 300, "keys": ["account_id"]})
class SyncAccount:
    async def process(self, job: Any) -> None:
        return None


@worker(queue="sync")
class Plain:
    async def process(self, job: Any) -> None:
        return None


@pytest.fixture
async def oban(db_url: str) -> AsyncIterator[Oban]:
    powertools = make_powertools(db_url)
    async with powertools, AsyncConnectionPool(db_url, min_size=1, max_size=8, open=False) as pool:
        runtime = Runtime(powertools, declarations=[], import_oban_cron=False)
        # No queues: nothing runs the jobs, so states change only as the tests say.
        yield Oban(pool=pool, node="unique-1", queues={}, **runtime.oban_options())


async def rows(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute(sql)  # type: ignore[arg-type]
        return list(await cur.fetchall())


async def test_fifty_concurrent_inserts_on_separate_connections_make_one_row(
    db_url: str, oban: Oban
) -> None:
    connections = [await psycopg.AsyncConnection.connect(db_url) for _ in range(50)]
    try:
        start = asyncio.Event()

        async def insert(conn: psycopg.AsyncConnection[Any]) -> Any:
            await start.wait()
            async with conn.transaction():
                return await oban.enqueue(SyncAccount.new({"account_id": 7}), conn=conn)

        tasks = [asyncio.create_task(insert(c)) for c in connections]
        start.set()
        jobs = await asyncio.gather(*tasks)
    finally:
        for conn in connections:
            await conn.close()
    assert await rows(db_url, "SELECT count(*) FROM oban_jobs") == [(1,)]
    assert len({job.id for job in jobs}) == 1
    assert sum(1 for job in jobs if not job.extra.get("conflict")) == 1


async def test_enqueue_many_with_duplicates_inside_the_batch_inserts_one_row_each(
    db_url: str, oban: Oban
) -> None:
    jobs = await oban.enqueue_many(
        [SyncAccount.new({"account_id": i % 3, "n": i}) for i in range(9)] + [Plain.new({})] * 0
    )
    assert await rows(db_url, "SELECT count(*) FROM oban_jobs") == [(3,)]
    first = {job.args["account_id"]: job.id for job in jobs[:3]}
    for job in jobs[3:]:
        assert job.extra["conflict"] is True
        assert job.id == first[job.args["account_id"]]  # the job it matched, returned


async def test_plain_jobs_in_a_batch_with_unique_ones_are_all_inserted_in_order(
    db_url: str, oban: Oban
) -> None:
    batch = [Plain.new({"i": 0}), SyncAccount.new({"account_id": 1}), Plain.new({"i": 2})]
    jobs = await oban.enqueue_many(batch + [SyncAccount.new({"account_id": 1})])
    assert [job.worker.rsplit(".", 1)[-1] for job in jobs] == [
        "Plain", "SyncAccount", "Plain", "SyncAccount",
    ]  # fmt: skip
    assert jobs[0].args == {"i": 0} and jobs[2].args == {"i": 2}
    assert jobs[3].id == jobs[1].id
    assert await rows(db_url, "SELECT count(*) FROM oban_jobs") == [(3,)]


async def test_a_unique_job_inside_a_rolled_back_host_transaction_leaves_nothing(
    db_url: str, oban: Oban
) -> None:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        tx = conn.transaction()
        await tx.__aenter__()
        job = await oban.enqueue(SyncAccount.new({"account_id": 9}), conn=conn)
        assert job.id is not None
        await tx.__aexit__(RuntimeError, RuntimeError("host failed"), None)
    assert await rows(db_url, "SELECT count(*) FROM oban_jobs") == [(0,)]
    again = await oban.enqueue(SyncAccount.new({"account_id": 9}))
    assert not again.extra.get("conflict")  # the key was never taken


@worker(queue="sync", unique={"period": "infinity", "replace": ["scheduled_at", "priority"]})
class Debounced:
    async def process(self, job: Any) -> None:
        return None


async def test_replace_updates_exactly_the_chosen_fields(db_url: str, oban: Oban) -> None:
    first = await oban.enqueue(Debounced.new({"a": 1}, scheduled_in=600, priority=1, tags=["x"]))
    second = await oban.enqueue(
        Debounced.new({"a": 1}, scheduled_in=1200, priority=3, tags=["y"], max_attempts=2)
    )
    assert second.id == first.id and second.extra["replaced"] is True
    assert second.priority == 3
    assert second.scheduled_at.replace(tzinfo=None) > first.scheduled_at.replace(tzinfo=None)
    assert second.tags == ["x"] and second.max_attempts == first.max_attempts  # not chosen
    [(priority, tags, max_attempts, state)] = await rows(
        db_url, "SELECT priority, tags, max_attempts, state::text FROM oban_jobs"
    )
    assert (priority, tags, max_attempts, state) == (3, ["x"], 20, "scheduled")


async def test_after_the_period_a_new_job_is_inserted(db_url: str, oban: Oban) -> None:
    first = await oban.enqueue(SyncAccount.new({"account_id": 5}))
    blocked = await oban.enqueue(SyncAccount.new({"account_id": 5}))
    assert blocked.extra["conflict"] and blocked.id == first.id
    # The first job was inserted longer ago than the period (300 s).
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE oban_jobs SET inserted_at = inserted_at - interval '301 seconds'"
        )
    later = await oban.enqueue(SyncAccount.new({"account_id": 5}))
    assert not later.extra.get("conflict") and later.id != first.id
    assert await rows(
        db_url, "SELECT id, meta ? 'unique_key', meta->'unique'->>'key' FROM oban_jobs ORDER BY id"
    ) == [(first.id, False, later.meta["unique_key"]), (later.id, True, later.meta["unique_key"])]


STATE_CASES = [
    # group, the holder's state, does it block a duplicate?
    ("incomplete", "executing", True),
    ("incomplete", "completed", False),
    ("successful", "completed", True),
    ("successful", "discarded", False),
    ("scheduled", "scheduled", True),
    ("scheduled", "available", False),
    ("all", "cancelled", True),
    ("all", "discarded", True),
]


@pytest.mark.parametrize(("group", "state", "blocks"), STATE_CASES)
async def test_each_states_group(
    db_url: str, oban: Oban, group: str, state: str, blocks: bool
) -> None:
    def job() -> Any:
        return Plain.new({"k": 1}, unique={"states": group, "period": "infinity"}, scheduled_in=60)

    holder = await oban.enqueue(job())
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE oban_jobs SET state = %s::oban_job_state WHERE id = %s",  # type: ignore[arg-type]
            (state, holder.id),
        )
    duplicate = await oban.enqueue(job())
    assert bool(duplicate.extra.get("conflict")) is blocks
    assert (duplicate.id == holder.id) is blocks


async def test_a_bad_unique_option_inserts_nothing(db_url: str, oban: Oban) -> None:
    with pytest.raises(UniqueOptionError, match=r"unique\.period: must be at least 1 second"):
        await oban.enqueue_many([Plain.new({"a": 1}), Plain.new({"a": 2}, unique={"period": 0})])
    assert await rows(db_url, "SELECT count(*) FROM oban_jobs") == [(0,)]
