"""Enqueueing workflows: atomic, one statement per table, bad input inserts nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from oban import Job, Oban, worker
from oban._extensions import _extensions
from psycopg_pool import AsyncConnectionPool

from oban_powertools import (
    WorkflowCycle,
    WorkflowError,
    WorkflowNotInserted,
    WorkflowUnknownDependency,
    WorkflowUnknownWorker,
)
from oban_powertools.runtime import Runtime
from oban_powertools.workflows import Workflow
from tests.support.limits import count, query
from tests.support.seams import make_powertools


@worker(queue="wf-enqueue")
class Noop:
    async def process(self, job: Any) -> None:
        return None


@worker(queue="wf-enqueue", unique={"period": 60})
class OnlyOnce:
    async def process(self, job: Any) -> None:
        return None


@pytest.fixture
async def oban(db_url: str) -> AsyncIterator[Oban]:
    powertools = make_powertools(db_url)
    async with powertools, AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False) as pool:
        runtime = Runtime(powertools, declarations=[], import_oban_cron=False)
        # No queues: nothing runs, states change only as the tests say.
        yield Oban(pool=pool, node="wf-enqueue", queues={}, **runtime.oban_options())


async def nothing_inserted(url: str) -> bool:
    jobs = await count(url, "SELECT count(*) AS n FROM oban_jobs")
    workflows = await count(url, "SELECT count(*) AS n FROM powertools_workflows")
    steps = await count(url, "SELECT count(*) AS n FROM powertools_workflow_steps")
    return jobs == workflows == steps == 0


async def test_bad_workflows_are_refused_with_nothing_inserted(db_url: str, oban: Oban) -> None:
    cyclic = Workflow(name="cyclic").add("a", Noop.new({}), deps=["b"])
    cyclic.add("b", Noop.new({}), deps=["a"])
    with pytest.raises(WorkflowCycle, match="a -> b -> a"):
        await cyclic.enqueue(oban)
    unknown = Workflow(name="unknown").add("a", Noop.new({}), deps=["ghost"])
    with pytest.raises(WorkflowUnknownDependency):
        await unknown.enqueue(oban)
    stray = Workflow(name="stray").add("a", Job(worker="nowhere.Missing", queue="x"))
    with pytest.raises(WorkflowUnknownWorker, match="'nowhere.Missing' cannot be resolved"):
        await stray.enqueue(oban)
    partial = Workflow(name="partial").add("a", Noop.new({})).add("b", Noop.new({}), deps=["a"])
    with pytest.raises(WorkflowError, match="holds 1 of its 2 step jobs"):
        await oban.enqueue_many(partial.jobs()[:1])
    mixed = Workflow(name="mixed").add("a", Noop.new({}))
    with pytest.raises(WorkflowError, match="cannot also hold unique jobs"):
        await oban.enqueue_many([*mixed.jobs(), OnlyOnce.new({"k": 1})])
    assert await nothing_inserted(db_url)


async def test_plain_jobs_enqueued_with_a_workflow_are_inserted_with_it(
    db_url: str, oban: Oban
) -> None:
    wf = Workflow(name="with-plain").add("a", Noop.new({})).add("b", Noop.new({}), deps=["a"])
    plain = Noop.new({"plain": True})
    jobs = await oban.enqueue_many([plain, *wf.jobs()])
    assert [j.state for j in jobs] == ["available", "available", "suspended"]
    assert jobs[0] is plain and plain.id is not None and "workflow_id" not in plain.meta


async def test_in_the_callers_transaction_a_rollback_leaves_nothing(
    db_url: str, oban: Oban
) -> None:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        async with conn.transaction(force_rollback=True):
            wf = Workflow(name="rolled-back").add("a", Noop.new({}))
            wf.add("b", Noop.new({}), deps=["a"])
            await wf.enqueue(oban, conn=conn)
            cur = await conn.execute("SELECT count(*) FROM powertools_workflow_edges")
            assert await cur.fetchone() == (1,)  # visible inside the transaction
    assert await nothing_inserted(db_url)


class CountingCursor(psycopg.AsyncCursor[Any]):
    executed: list[str] = []

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        CountingCursor.executed.append(str(query)[:60])
        return await super().execute(query, params, **kwargs)


async def test_a_ten_thousand_step_workflow_is_one_statement_per_table(
    db_url: str, oban: Oban
) -> None:
    wf = Workflow(name="wide")
    wf.add("root", Noop.new({}))
    for i in range(9_999):
        # Layers of 100 steps, each depending on two steps of the layer before.
        layer, pos = divmod(i, 100)
        deps = (
            ["root"] if layer == 0 else [f"s{i - 100}", f"s{(layer - 1) * 100 + (pos + 1) % 100}"]
        )
        wf.add(f"s{i}", Noop.new({"i": i}), deps=deps)
    async with await psycopg.AsyncConnection.connect(db_url, cursor_factory=CountingCursor) as conn:
        CountingCursor.executed.clear()
        async with conn.transaction():
            jobs = await wf.enqueue(oban, conn=conn)
    assert len(CountingCursor.executed) == 4  # workflows, jobs, steps, edges
    assert len(jobs) == 10_000 and sum(j.state == "available" for j in jobs) == 1
    assert await count(db_url, "SELECT count(*) AS n FROM powertools_workflow_edges") == 19_898
    found = await query(db_url, "SELECT state, steps_total FROM powertools_workflows")
    assert found == [{"state": "executing", "steps_total": 10_000}]


async def test_without_the_hooks_a_workflow_says_so_and_none_of_it_runs(
    db_url: str, oban: Oban
) -> None:
    saved = dict(_extensions)
    _extensions.pop("query.insert_jobs", None)  # as in a process that never installed them
    try:
        wf = Workflow(name="unhooked").add("a", Noop.new({}))
        with pytest.raises(WorkflowNotInserted, match="hooks are not installed"):
            await wf.enqueue(oban)
    finally:
        _extensions.clear()
        _extensions.update(saved)
    found = await query(db_url, "SELECT state::text FROM oban_jobs")
    assert found == [{"state": "suspended"}]
