"""Steps appended to a running workflow while the dependency they name finishes: the
appended step is released exactly once, whichever of the append and the ack locks the
workflow's row first. The interleavings are made exact: each side's transaction is held
open at the lock, the other waits on it (seen in pg_stat_activity), then it commits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from oban import Oban, worker
from psycopg_pool import AsyncConnectionPool

from oban_powertools.runtime import Runtime
from oban_powertools.runtime.workflow_release import Finish, Progress, propagate
from oban_powertools.workflows import Workflow
from tests.support.limits import query
from tests.support.seams import make_powertools
from tests.support.waiting import eventually


@worker(queue="wf-append-race")
class Noop:
    async def process(self, job: Any) -> None:
        return None


@pytest.fixture
async def oban(db_url: str) -> AsyncIterator[Oban]:
    powertools = make_powertools(db_url)
    async with powertools, AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False) as pool:
        # No queue and no leader (so no repair): steps move only as the test moves them.
        runtime = Runtime(powertools, declarations=[], import_oban_cron=False)
        node = Oban(pool=pool, node="wf-append-race", queues={}, **runtime.oban_options())
        await node.start()
        try:
            yield node
        finally:
            await node.stop()


async def waits_on_a_lock(url: str, pid: int) -> bool:
    found = await query(
        url, "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %(pid)s", {"pid": pid}
    )
    return bool(found) and found[0]["wait_event_type"] == "Lock"


async def step_b(url: str) -> dict[str, Any]:
    (row,) = await query(
        url,
        "SELECT s.pending, s.outcome, j.id, j.state::text AS state FROM powertools_workflow_steps s "
        "JOIN oban_jobs j ON j.id = s.job_id WHERE s.name = 'b'",
    )
    return row


async def finish_a(conn: psycopg.AsyncConnection[Any], workflow: Workflow) -> Progress:
    """What the ack of step a's job runs after oban's ack, in ``conn``'s transaction."""
    woken: list[str] = []
    return await propagate(
        conn, "public", [Finish(workflow.id, "a", "completed")], wake=woken.append
    )


async def test_an_append_that_locked_first_is_released_by_the_ack_waiting_on_it(
    db_url: str, oban: Oban
) -> None:
    wf = Workflow(name="race-append-first").add("a", Noop.new({}))
    await wf.enqueue(oban)
    async with (
        await psycopg.AsyncConnection.connect(db_url) as appender,
        await psycopg.AsyncConnection.connect(db_url) as acker,
    ):
        await appender.execute("SELECT 1")  # the host's transaction, held open
        more = Workflow.appending_to(wf.id).add("b", Noop.new({}), deps=["a"])
        (appended,) = await more.enqueue(oban, conn=appender)
        assert appended.state == "suspended"  # a had not finished when the append read it

        async def ack() -> Progress:
            async with acker.transaction():
                return await finish_a(acker, wf)

        acking = asyncio.create_task(ack())
        pid = acker.info.backend_pid
        await eventually(lambda: waits_on_a_lock(db_url, pid), what="the ack waits on the append")
        await appender.commit()
        progress = await asyncio.wait_for(acking, timeout=10)

    assert progress.released == [appended.id]  # released once, by the ack
    assert await step_b(db_url) == {
        "pending": 0,
        "outcome": None,
        "id": appended.id,
        "state": "available",
    }


async def test_an_append_waiting_on_the_ack_counts_the_dependency_finished(
    db_url: str, oban: Oban
) -> None:
    # c never runs: the workflow is still running when the append comes.
    wf = Workflow(name="race-ack-first").add("a", Noop.new({})).add("c", Noop.new({}))
    await wf.enqueue(oban)
    async with (
        await psycopg.AsyncConnection.connect(db_url) as appender,
        await psycopg.AsyncConnection.connect(db_url) as acker,
    ):
        await acker.execute("SELECT 1")  # the ack's transaction, held open after its work
        progress = await finish_a(acker, wf)
        assert progress.released == []
        await appender.execute("SELECT 1")
        more = Workflow.appending_to(wf.id).add("b", Noop.new({}), deps=["a"])
        appending = asyncio.create_task(more.enqueue(oban, conn=appender))
        pid = appender.info.backend_pid
        await eventually(lambda: waits_on_a_lock(db_url, pid), what="the append waits on the ack")
        await acker.commit()
        (appended,) = await asyncio.wait_for(appending, timeout=10)
        await appender.commit()

    assert appended.state == "available"  # released at insert: a was seen completed
    assert await step_b(db_url) == {
        "pending": 0,
        "outcome": None,
        "id": appended.id,
        "state": "available",
    }
    (row,) = await query(db_url, "SELECT steps_total, steps_completed FROM powertools_workflows")
    assert row == {"steps_total": 3, "steps_completed": 1}
