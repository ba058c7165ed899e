"""The control plane over workflows that really run: a workflow enqueued through
``Workflow.enqueue`` on an oban node with the Powertools hooks, seen by the read model,
the explainer and forensics, and retried and cancelled through the pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from oban import Oban

from oban_powertools import Powertools
from oban_powertools.display import Display
from oban_powertools.forensics import build_bundle
from oban_powertools.read_models import workflows as model
from oban_powertools.read_models.explain import explain
from oban_powertools.workflows import Workflow
from tests.support.limits import oban_nodes, query
from tests.support.seams import OPERATOR, make_powertools
from tests.support.waiting import eventually
from tests.support.workflows import QUEUE, close_runs, open_runs, step, workflow_row


@pytest.fixture
async def oban(db_url: str) -> AsyncIterator[Oban]:
    await open_runs(db_url)
    async with oban_nodes(db_url, ["wf-control"], {QUEUE: 5}) as (node,):
        yield node
    await close_runs()


@pytest.fixture
async def pt(db_url: str) -> AsyncIterator[Powertools]:
    powertools = make_powertools(db_url)
    async with powertools:
        yield powertools


async def wait_state(url: str, workflow: Workflow, *states: str) -> dict[str, Any]:
    async def reached() -> bool:
        return bool((await workflow_row(url, workflow.id))["state"] in states)

    await eventually(reached, within=20, what=f"workflow {workflow.name} {states}")
    return await workflow_row(url, workflow.id)


async def test_retry_then_the_workflow_completes(db_url: str, oban: Oban, pt: Powertools) -> None:
    wf = Workflow(name="invoice")
    wf.add("fetch", step()).add("render", step(outcome="cancel"), deps=["fetch"])
    wf.add("mail", step(), deps=["render"])
    await wf.enqueue(oban)
    row = await wait_state(db_url, wf, "cancelled")
    assert (row["steps_completed"], row["steps_cancelled"]) == (1, 2)

    display = Display(pt.config.display, "page")
    detail = await model.workflow_detail(pt.db, display, wf.id)
    assert detail is not None and detail.drawn and detail.actions == ["retry_workflow"]
    steps = {s.key: s for s in detail.steps}
    assert steps["mail"].outcome == "cancelled" and steps["mail"].cancelled_by
    explained = await explain(pt.db, display, steps["mail"].job_id or 0)
    assert explained is not None
    assert [r.code for r in explained.reasons] == ["workflow_dependency_failed"]
    assert "its dependency render (cancelled) did not complete" in explained.reasons[0].title
    bundle = await build_bundle(pt.db, display.on("forensics"), "workflow", str(wf.id))
    assert bundle.state == "cancelled" and "step render was cancelled" in bundle.diagnosis

    # The step's cause is fixed (its job's args say so now), then the workflow retried.
    await query(
        db_url,
        "UPDATE oban_jobs SET args = '{}' WHERE meta->>'workflow_step' = 'render'"
        " AND meta->>'workflow_id' = %(id)s RETURNING id",
        {"id": str(wf.id)},
    )
    preview = await pt.pipeline.preview(OPERATOR, "retry_workflow", str(wf.id))
    (snap,) = preview.before.values()
    assert [(j["step"], j["to"]) for j in snap["jobs"]] == [
        ("mail", "suspended"),
        ("render", "available"),
    ]
    await pt.pipeline.execute(OPERATOR, preview.token, "renderer fixed")
    row = await wait_state(db_url, wf, "completed")
    assert (row["steps_completed"], row["steps_cancelled"], row["steps_discarded"]) == (3, 0, 0)


async def test_cancel_a_running_workflow(db_url: str, oban: Oban, pt: Powertools) -> None:
    wf = Workflow(name="long")
    wf.add("slow", step(ms=3_000)).add("after", step(), deps=["slow"])
    await wf.enqueue(oban)

    async def running() -> bool:
        found = await query(
            db_url,
            "SELECT 1 FROM oban_jobs WHERE state = 'executing' AND meta->>'workflow_id' = %(id)s",
            {"id": str(wf.id)},
        )
        return bool(found)

    await eventually(running, within=10, what="the slow step running")
    display = Display(pt.config.display, "page")
    (after,) = [
        s
        for s in (await model.workflow_detail(pt.db, display, wf.id)).steps  # type: ignore[union-attr]
        if s.key == "after"
    ]
    waiting = await explain(pt.db, display, after.job_id or 0)
    assert waiting is not None and waiting.waiting
    assert [r.code for r in waiting.reasons] == ["workflow_dependencies"]
    assert waiting.reasons[0].title.startswith("Waiting on dependencies slow")

    await pt.pipeline.run(OPERATOR, "cancel_workflow", str(wf.id), reason="no longer needed")
    row = await workflow_row(db_url, wf.id)
    assert row["state"] == "cancelled"

    async def stopped() -> bool:
        found = await query(
            db_url,
            "SELECT s.outcome, j.state::text AS state FROM powertools_workflow_steps s"
            " JOIN oban_jobs j ON j.id = s.job_id WHERE s.workflow_id = %(id)s"
            " AND s.name = 'slow'",
            {"id": str(wf.id)},
        )
        return found[0]["outcome"] is not None

    # The running step was only asked to stop (its worker does not check): when it
    # finishes, its ack records it and counts it, and the workflow stays cancelled.
    await eventually(stopped, within=20, what="the slow step recorded")
    row = await workflow_row(db_url, wf.id)
    assert row["state"] == "cancelled"
    assert row["steps_cancelled"] + row["steps_completed"] == 2 and row["steps_cancelled"] >= 1
