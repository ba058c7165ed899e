"""cancel_workflow and retry_workflow through the one pipeline: the preview names the
exact jobs, the confirm changes exactly those (jobs, steps, counters) with its audit
event, drift changes nothing, bad input is refused with nothing changed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from oban_powertools import Powertools
from oban_powertools.actions import errors
from tests.support.seams import OPERATOR, VIEWER, make_powertools
from tests.support.workflow_rows import StepSpec, attach, build, diamond


@pytest.fixture
async def pt(db_url: str) -> AsyncIterator[Powertools]:
    powertools = make_powertools(db_url)
    async with powertools:
        yield powertools


async def one(conn: Any, query: str, *params: Any) -> dict[str, Any]:
    cur = await conn.execute(query, params)
    row = await cur.fetchone()
    assert row is not None
    return dict(row)


async def states(conn: Any, jobs: dict[str, int]) -> dict[str, str]:
    cur = await conn.execute(
        "SELECT id, state::text AS state FROM oban_jobs WHERE id = ANY(%s)", (list(jobs.values()),)
    )
    by_id = {r["id"]: r["state"] for r in await cur.fetchall()}
    return {step: by_id[job] for step, job in jobs.items()}


async def steps(conn: Any, wid: str) -> dict[str, tuple[str | None, int]]:
    cur = await conn.execute(
        "SELECT name, outcome, pending FROM powertools_workflow_steps WHERE workflow_id = %s",
        (wid,),
    )
    return {r["name"]: (r["outcome"], r["pending"]) for r in await cur.fetchall()}


async def workflow(conn: Any, wid: str) -> dict[str, Any]:
    return await one(conn, "SELECT * FROM powertools_workflows WHERE id = %s", wid)


async def events(conn: Any) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT action, command, resource_type, resource_id, before, after, reason"
        " FROM powertools_audit_events WHERE outcome = 'succeeded' ORDER BY id"
    )
    return list(await cur.fetchall())


async def test_cancel_previews_and_cancels_exactly_the_unfinished_jobs(
    pt: Powertools, conn: Any
) -> None:
    wf = await build(conn, "invoice", diamond(a="completed", b="executing", c="available"))
    preview = await pt.pipeline.preview(OPERATOR, "cancel_workflow", wf.id, surface="web")
    (snap,) = preview.before.values()
    touched = {(j["id"], j["step"], j["state"], j["to"]) for j in snap["jobs"]}
    assert touched == {
        (wf.jobs["b"], "b", "executing", "asked to stop"),
        (wf.jobs["c"], "c", "available", "cancelled"),
        (wf.jobs["d"], "d", "suspended", "cancelled"),
    }
    assert f"exactly these 3 jobs are cancelled ({wf.jobs['b']}, {wf.jobs['c']}," in (
        preview.effect
    )
    assert "1 running job is asked to stop" in preview.effect

    result = await pt.pipeline.execute(OPERATOR, preview.token, "customer withdrew", surface="web")
    assert await states(conn, wf.jobs) == {
        "a": "completed",
        "b": "executing",  # told to stop; its ack records the step
        "c": "cancelled",
        "d": "cancelled",
    }
    assert await steps(conn, wf.id) == {
        "a": ("completed", 0),
        "b": (None, 0),
        "c": ("cancelled", 0),
        "d": ("cancelled", 2),
    }
    row = await workflow(conn, wf.id)
    assert (row["state"], row["steps_completed"], row["steps_cancelled"]) == ("cancelled", 1, 2)
    assert row["finished_at"] is not None
    (event,) = await events(conn)
    assert event["action"] == "workflow.cancelled" and event["resource_id"] == wf.id
    assert event["reason"] == "customer withdrew" and result.audit_event_id
    assert {j["id"] for j in event["before"]["jobs"]} == set(wf.jobs.values()) - {wf.jobs["a"]}
    assert event["after"]["state"] == "cancelled"


async def test_cancel_takes_the_sub_workflows_along(pt: Powertools, conn: Any) -> None:
    parent = await build(
        conn, "parent", {"first": StepSpec(state="completed"), "nested": StepSpec(("first",))}
    )
    sub = await build(
        conn, "child", {"inner": StepSpec(state="available")}, parent=(parent.id, "nested")
    )
    await attach(conn, parent.id, "nested", sub.id)
    with pytest.raises(errors.NotApplicable, match="cancelled with its parent"):
        await pt.pipeline.preview(OPERATOR, "cancel_workflow", sub.id)
    await pt.pipeline.run(OPERATOR, "cancel_workflow", parent.id, reason="stop all")
    assert (await workflow(conn, sub.id))["state"] == "cancelled"
    assert (await workflow(conn, parent.id))["steps_cancelled"] == 1
    assert await states(conn, sub.jobs) == {"inner": "cancelled"}
    assert await steps(conn, parent.id) == {"first": ("completed", 0), "nested": ("cancelled", 0)}


async def test_retry_reruns_the_failed_steps_and_their_dependents(
    pt: Powertools, conn: Any
) -> None:
    spec = diamond(a="completed", b="discarded", c="completed")
    spec["d"] = StepSpec(("b", "c"), "cancelled", cancelled_by="workflow dependency b discarded")
    wf = await build(conn, "invoice", spec)
    before = await workflow(conn, wf.id)
    assert (before["state"], before["steps_cancelled"], before["steps_discarded"]) == (
        "discarded",
        1,
        1,
    )
    preview = await pt.pipeline.preview(OPERATOR, "retry_workflow", wf.id)
    (snap,) = preview.before.values()
    assert [(j["step"], j["state"], j["to"]) for j in snap["jobs"]] == [
        ("b", "discarded", "available"),
        ("d", "cancelled", "suspended"),
    ]
    assert f"{wf.jobs['b']} run again now" in preview.effect
    assert f"{wf.jobs['d']} wait again (suspended)" in preview.effect

    await pt.pipeline.execute(OPERATOR, preview.token, "fixed the renderer")
    assert await states(conn, wf.jobs) == {
        "a": "completed",
        "b": "available",
        "c": "completed",
        "d": "suspended",
    }
    assert await steps(conn, wf.id) == {
        "a": ("completed", 0),
        "b": (None, 0),
        "c": ("completed", 0),
        "d": (None, 1),  # waits for b again; c completed
    }
    row = await workflow(conn, wf.id)
    assert (row["state"], row["steps_completed"], row["steps_cancelled"]) == ("executing", 2, 0)
    assert row["steps_discarded"] == 0 and row["finished_at"] is None
    job_b = await one(
        conn, "SELECT attempt, max_attempts FROM oban_jobs WHERE id = %s", wf.jobs["b"]
    )
    assert job_b["max_attempts"] >= job_b["attempt"] + 1
    (event,) = await events(conn)
    assert event["action"] == "workflow.retried" and event["after"]["state"] == "executing"


async def test_drift_changes_nothing(pt: Powertools, conn: Any) -> None:
    wf = await build(conn, "invoice", diamond(a="completed", b="executing"))
    preview = await pt.pipeline.preview(OPERATOR, "cancel_workflow", wf.id)
    # Step c is released after the preview.
    await conn.execute("UPDATE oban_jobs SET state = 'available' WHERE id = %s", (wf.jobs["c"],))
    untouched = await states(conn, wf.jobs)
    with pytest.raises(errors.PreviewDrifted):
        await pt.pipeline.execute(OPERATOR, preview.token, "too late")
    assert await states(conn, wf.jobs) == untouched
    assert (await workflow(conn, wf.id))["state"] == "executing"
    assert await events(conn) == []
    status = await one(
        conn, "SELECT status FROM powertools_previews WHERE token = %s", preview.token
    )
    assert status["status"] == "drifted"


async def test_bad_input_is_refused_with_nothing_changed(pt: Powertools, conn: Any) -> None:
    done = await build(conn, "report", {"x": StepSpec(state="completed")})
    for action in ("cancel_workflow", "retry_workflow"):
        with pytest.raises(errors.InvalidTargets, match="not a workflow id"):
            await pt.pipeline.preview(OPERATOR, action, "not-a-uuid")
        with pytest.raises(errors.UnknownTarget, match="no workflow"):
            await pt.pipeline.preview(OPERATOR, action, "00000000-0000-4000-8000-000000000000")
    with pytest.raises(errors.NotApplicable, match="a completed workflow cannot be cancelled"):
        await pt.pipeline.preview(OPERATOR, "cancel_workflow", done.id)
    with pytest.raises(errors.NotApplicable, match="nothing to retry"):
        await pt.pipeline.preview(OPERATOR, "retry_workflow", done.id)
    with pytest.raises(errors.Unauthorized):
        await pt.pipeline.preview(VIEWER, "cancel_workflow", done.id)
    cur = await conn.execute("SELECT count(*) AS n FROM powertools_previews")
    assert (await cur.fetchone())["n"] == 0
    assert await events(conn) == []
