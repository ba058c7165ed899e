"""Workflows run on real oban nodes: each step once, never before its dependencies."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from oban_powertools.workflows import Workflow
from tests.support.limits import count, oban_nodes, query
from tests.support.waiting import eventually
from tests.support.workflows import (
    QUEUE,
    check_order,
    close_runs,
    open_runs,
    runs,
    step,
    workflow_row,
)


@pytest.fixture
async def recorded(db_url: str) -> AsyncIterator[None]:
    await open_runs(db_url)
    yield
    await close_runs()


async def finished(url: str, workflow: Workflow) -> bool:
    row = await workflow_row(url, workflow.id)
    return bool(row["state"] != "executing")


async def test_a_diamond_runs_each_step_once_after_its_dependencies(
    db_url: str, recorded: None
) -> None:
    wf = Workflow(name="diamond")
    wf.add("a", step(20)).add("b", step(30), deps=["a"]).add("c", step(10), deps=["a"])
    wf.add("d", step(), deps=["b", "c"])
    deps = {name: s.deps for name, s in wf.steps.items()}
    async with oban_nodes(db_url, ["wf-1"], {QUEUE: 5}) as (oban,):
        jobs = await wf.enqueue(oban)
        assert [j.state for j in jobs] == ["available", "suspended", "suspended", "suspended"]
        await eventually(lambda: finished(db_url, wf), within=15, what="the diamond finished")
    row = await workflow_row(db_url, wf.id)
    assert (row["state"], row["steps_completed"], row["steps_total"]) == ("completed", 4, 4)
    check_order(await runs(db_url), deps)
    steps = await query(
        db_url, "SELECT name, pending, outcome FROM powertools_workflow_steps ORDER BY name"
    )
    assert steps == [{"name": n, "pending": 0, "outcome": "completed"} for n in "abcd"]


def random_dag(n: int, seed: int) -> dict[str, list[str]]:
    """n steps; each depends on up to 3 random earlier ones (acyclic by construction)."""
    rng = random.Random(seed)
    deps: dict[str, list[str]] = {}
    for i in range(n):
        earlier = [f"s{j}" for j in range(max(0, i - 50), i)]
        deps[f"s{i}"] = rng.sample(earlier, k=min(len(earlier), rng.randint(0, 3)))
    return deps


async def test_a_thousand_step_random_dag_completes_on_three_nodes(
    db_url: str, recorded: None
) -> None:
    deps = random_dag(1000, seed=16)
    rng = random.Random(7)
    wf = Workflow(name="random-dag")
    for name, ds in deps.items():
        wf.add(name, step(rng.randint(0, 8)), deps=ds)
    async with oban_nodes(db_url, ["wf-a", "wf-b", "wf-c"], {QUEUE: 10}) as nodes:
        await wf.enqueue(nodes[0])
        await eventually(lambda: finished(db_url, wf), within=180, what="the DAG finished")
    row = await workflow_row(db_url, wf.id)
    assert (row["state"], row["steps_completed"]) == ("completed", 1000)
    records = await runs(db_url)
    check_order(records, deps)
    assert len(records) == 1000
    assert len({r["node"] for r in records}) == 3  # every node ran some steps
    assert (
        await count(db_url, "SELECT count(*) AS n FROM oban_jobs WHERE state <> 'completed'") == 0
    )
