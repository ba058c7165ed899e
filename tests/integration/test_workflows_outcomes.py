"""What a workflow does with cancelled and discarded steps, sub-workflows and appended
steps, on a real oban node."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from oban import Oban

from oban_powertools import WorkflowDuplicateStep, WorkflowFinished, WorkflowUnknownDependency
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
async def oban(db_url: str) -> AsyncIterator[Oban]:
    await open_runs(db_url)
    async with oban_nodes(db_url, ["wf-out"], {QUEUE: 5}) as (node,):
        yield node
    await close_runs()


async def wait_finished(url: str, workflow: Workflow, within: float = 15) -> dict[str, Any]:
    async def done() -> bool:
        return bool((await workflow_row(url, workflow.id))["state"] not in ("executing", "pending"))

    await eventually(done, within=within, what=f"workflow {workflow.name} finished")
    return await workflow_row(url, workflow.id)


async def states(url: str, workflow: Workflow) -> dict[str, tuple[str, str | None]]:
    found = await query(
        url,
        "SELECT s.name, j.state::text AS job, s.outcome FROM powertools_workflow_steps s "
        "JOIN oban_jobs j ON j.id = s.job_id WHERE s.workflow_id = %(id)s",
        {"id": workflow.id},
    )
    return {r["name"]: (r["job"], r["outcome"]) for r in found}


async def test_a_cancelled_step_cancels_its_dependents_transitively_with_a_reason(
    db_url: str, oban: Oban
) -> None:
    wf = Workflow(name="cancels")
    wf.add("a", step(outcome="cancel")).add("b", step(), deps=["a"])
    wf.add("c", step(), deps=["b"]).add("other", step())
    await wf.enqueue(oban)
    row = await wait_finished(db_url, wf)
    assert (row["state"], row["steps_cancelled"], row["steps_completed"]) == ("cancelled", 3, 1)
    assert await states(db_url, wf) == {
        "a": ("cancelled", "cancelled"),
        "b": ("cancelled", "cancelled"),
        "c": ("cancelled", "cancelled"),
        "other": ("completed", "completed"),
    }
    found = await query(
        db_url,
        "SELECT s.name, s.cancelled_by, j.meta ->> 'workflow_cancelled' AS reason, j.errors "
        "FROM powertools_workflow_steps s JOIN oban_jobs j ON j.id = s.job_id "
        "WHERE s.name IN ('b', 'c') ORDER BY s.name",
    )
    assert [r["reason"] for r in found] == [
        "workflow dependency a cancelled",
        "workflow dependency b cancelled",
    ]
    assert found[0]["errors"][-1]["error"] == "workflow dependency a cancelled"
    assert {r["step"] for r in await runs(db_url)} == {"a", "other"}  # b, c never ran


async def test_a_discarded_step_is_ignored_where_a_step_says_so(db_url: str, oban: Oban) -> None:
    wf = Workflow(name="discards")
    wf.add("a", step(outcome="discard", max_attempts=1))
    wf.add("tolerant", step(), deps=["a"], on_dep_discarded="ignore")
    wf.add("strict", step(), deps=["a"])
    wf.add("after", step(), deps=["tolerant"])
    await wf.enqueue(oban)
    row = await wait_finished(db_url, wf)
    assert await states(db_url, wf) == {
        "a": ("discarded", "discarded"),
        "tolerant": ("completed", "completed"),
        "strict": ("cancelled", "cancelled"),
        "after": ("completed", "completed"),
    }
    assert (row["state"], row["steps_discarded"], row["steps_cancelled"]) == ("discarded", 1, 1)


async def test_a_workflow_wide_ignore_policy_runs_everything(db_url: str, oban: Oban) -> None:
    wf = Workflow(name="lenient", on_dep_cancelled="ignore")
    wf.add("a", step(outcome="cancel")).add("b", step(), deps=["a"])
    await wf.enqueue(oban)
    await wait_finished(db_url, wf)
    assert (await states(db_url, wf))["b"] == ("completed", "completed")


async def test_a_completed_sub_workflow_releases_its_parents_dependents(
    db_url: str, oban: Oban
) -> None:
    inner = Workflow(name="inner").add("x", step(20)).add("y", step(20), deps=["x"])
    nested = Workflow(name="nested").add("n", step())
    inner.add_workflow("deeper", nested, deps=["y"])
    outer = Workflow(name="outer").add("a", step(20))
    outer.add_workflow("sub", inner, deps=["a"]).add("z", step(), deps=["sub"])
    jobs = await outer.enqueue(oban)
    assert [j.meta["workflow_step"] for j in jobs if j.state == "available"] == ["a"]
    row = await wait_finished(db_url, outer)
    assert (row["state"], row["steps_completed"]) == ("completed", 3)
    assert (await workflow_row(db_url, inner.id))["state"] == "completed"
    assert (await workflow_row(db_url, nested.id))["state"] == "completed"
    records = await runs(db_url)
    check_order(records, {"a": [], "x": ["a"], "y": ["x"], "n": ["y"], "z": ["n", "y"]})


async def test_a_failed_sub_workflow_cancels_its_parents_dependents(
    db_url: str, oban: Oban
) -> None:
    inner = Workflow(name="inner").add("x", step(outcome="cancel")).add("y", step(), deps=["x"])
    outer = Workflow(name="outer").add_workflow("sub", inner).add("z", step(), deps=["sub"])
    await outer.enqueue(oban)
    row = await wait_finished(db_url, outer)
    assert (row["state"], row["steps_cancelled"]) == ("cancelled", 2)
    assert (await states(db_url, outer))["z"] == ("cancelled", "cancelled")
    assert (await workflow_row(db_url, inner.id))["state"] == "cancelled"


async def test_a_cancelled_sub_workflow_step_cancels_the_whole_sub_workflow(
    db_url: str, oban: Oban
) -> None:
    inner = Workflow(name="inner").add("x", step()).add("y", step(), deps=["x"])
    outer = Workflow(name="outer").add("a", step(outcome="cancel"))
    outer.add_workflow("sub", inner, deps=["a"])
    await outer.enqueue(oban)
    await wait_finished(db_url, outer)
    sub = await wait_finished(db_url, inner)
    assert (sub["state"], sub["steps_cancelled"]) == ("cancelled", 2)
    assert set((await states(db_url, inner)).values()) == {("cancelled", "cancelled")}


async def test_appended_steps_run_counting_completed_dependencies_as_satisfied(
    db_url: str, oban: Oban
) -> None:
    wf = Workflow(name="growing").add("a", step()).add("b", step(600), deps=["a"])
    await wf.enqueue(oban)

    async def a_done() -> bool:
        return (await states(db_url, wf))["a"][1] == "completed"

    await eventually(a_done, what="a completed")
    more = Workflow.appending_to(wf.id)
    more.add("c", step(), deps=["a"]).add("d", step(), deps=["b", "c"])
    jobs = await more.enqueue(oban)
    assert [j.state for j in jobs] == ["available", "suspended"]
    row = await wait_finished(db_url, wf)
    assert (row["state"], row["steps_total"], row["steps_completed"]) == ("completed", 4, 4)
    check_order(await runs(db_url), {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]})

    with pytest.raises(WorkflowFinished, match="already finished"):
        await Workflow.appending_to(wf.id).add("e", step()).enqueue(oban)


async def test_bad_appends_insert_nothing(db_url: str, oban: Oban) -> None:
    wf = Workflow(name="target").add("a", step(2000))
    await wf.enqueue(oban)
    before = await count(db_url, "SELECT count(*) AS n FROM oban_jobs")
    with pytest.raises(WorkflowUnknownDependency, match="'x' depends on 'nope'"):
        await Workflow.appending_to(wf.id).add("x", step(), deps=["nope"]).enqueue(oban)
    with pytest.raises(WorkflowDuplicateStep):
        await Workflow.appending_to(wf.id).add("a", step()).enqueue(oban)
    assert await count(db_url, "SELECT count(*) AS n FROM oban_jobs") == before
    assert (await workflow_row(db_url, wf.id))["steps_total"] == 1


async def test_a_retried_completed_step_runs_again_but_releases_nothing_twice(
    db_url: str, oban: Oban
) -> None:
    wf = Workflow(name="retried").add("a", step()).add("c", step(queue="wf-idle"))
    wf.add("b", step(), deps=["a", "c"])
    jobs = {j.meta["workflow_step"]: j for j in await wf.enqueue(oban)}

    async def a_done() -> bool:
        return (await states(db_url, wf))["a"] == ("completed", "completed")

    await eventually(a_done, what="a completed")
    await oban.retry_job(jobs["a"].id)  # an operator's retry of a finished step

    async def a_ran_twice() -> bool:
        found = await runs(db_url)
        return (
            sum(1 for r in found if r["step"] == "a" and r["finished_at"]) == 2
            and (await states(db_url, wf))["a"][0] == "completed"
        )

    await eventually(a_ran_twice, what="a ran again and completed")
    found = await query(db_url, "SELECT pending FROM powertools_workflow_steps WHERE name = 'b'")
    assert found == [{"pending": 1}]  # still waiting for c: a counted once
    assert (await states(db_url, wf))["b"] == ("suspended", None)
    assert (await states(db_url, wf))["c"] == ("available", None)  # no node runs its queue
    assert (await workflow_row(db_url, wf.id))["steps_completed"] == 1
