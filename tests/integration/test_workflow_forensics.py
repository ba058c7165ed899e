"""The evidence bundle of a workflow: diagnosis (running, waiting, stuck, how it
finished and because of which step), chronology, completeness, ownership-labelled next
paths, and its export."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from oban_powertools import Powertools
from oban_powertools.display import Display
from oban_powertools.forensics import SUBJECT_TYPES, EvidenceBundle, build_bundle
from tests.support.seams import OPERATOR, make_powertools
from tests.support.workflow_rows import StepSpec, build, diamond


@pytest.fixture
async def pt(db_url: str) -> AsyncIterator[Powertools]:
    powertools = make_powertools(db_url)
    async with powertools:
        yield powertools


async def bundle(pt: Powertools, wid: str) -> EvidenceBundle:
    display = Display(pt.config.display, "forensics")
    return await build_bundle(pt.db, display, "workflow", wid)


def paths(b: EvidenceBundle) -> list[tuple[str, str]]:
    return [(p.ownership, p.label) for p in b.next_paths]


async def test_a_running_workflow(pt: Powertools, conn: Any) -> None:
    assert "workflow" in SUBJECT_TYPES
    wf = await build(conn, "invoice", diamond(a="completed", b="executing", c="completed"))
    b = await bundle(pt, wf.id)
    assert b.state == "executing"
    assert b.diagnosis == (
        "Running: b executing; 1 step(s) waiting on b. 2 of 4 steps finished (2 completed)."
    )
    assert b.completeness.label == "complete"
    titles = [i.title for i in b.chronology]
    assert "inserted" in titles and "step a completed" in titles and "step b started" in titles
    assert paths(b)[0] == ("Powertools-native", "Cancel workflow")
    assert ("Powertools-native", "Audit trail for this subject") in paths(b)
    assert b.to_dict()["subject"]["resource_type"] == "workflow"


async def test_a_stuck_workflow_names_the_missed_release(pt: Powertools, conn: Any) -> None:
    steps = diamond(a="completed", b="completed", c="completed")
    steps["d"].pending = 0
    wf = await build(conn, "invoice", steps)
    b = await bundle(pt, wf.id)
    assert b.state == "stuck"
    assert b.diagnosis.startswith(
        "Stuck: 1 step(s) (d) are still suspended although every dependency has finished"
    )
    assert "periodic workflow repair releases them" in b.diagnosis
    assert "nothing else is needed" in b.next_paths[0].note


async def test_a_discarded_workflow_names_the_step(pt: Powertools, conn: Any) -> None:
    spec = diamond(a="completed", b="discarded", c="completed")
    spec["d"] = StepSpec(("b", "c"), "cancelled", cancelled_by="workflow dependency b discarded")
    wf = await build(conn, "invoice", spec)
    await conn.execute("DELETE FROM oban_jobs WHERE id = %s", (wf.jobs["c"],))
    b = await bundle(pt, wf.id)
    assert b.state == "discarded"
    assert "step b was discarded" in b.diagnosis
    assert "1 step(s) were cancelled without running because a dependency did not complete: d." in (
        b.details
    )
    assert ("Powertools-native", "Retry workflow") == paths(b)[0]
    assert ("Powertools-native", "Evidence for step b's job") in paths(b)
    assert ("host-owned follow-up", "Fix the worker or its upstream dependency") in paths(b)
    assert b.completeness.label == "partial evidence"
    assert "1 step job(s) were pruned" in b.completeness.reasons[0]


async def test_an_operator_cancel_is_in_the_chronology(pt: Powertools, conn: Any) -> None:
    wf = await build(conn, "invoice", diamond(a="completed"))
    await pt.pipeline.run(OPERATOR, "cancel_workflow", wf.id, reason="customer withdrew")
    b = await bundle(pt, wf.id)
    assert b.state == "cancelled"
    assert "Ops Demo (ops-demo) cancelled it" in b.diagnosis
    audit = [i for i in b.chronology if i.source == "audit"]
    assert audit and audit[0].title == "workflow.cancelled via api"
    assert audit[0].detail == "Reason: 'customer withdrew'."


async def test_a_missing_workflow(pt: Powertools) -> None:
    b = await bundle(pt, "00000000-0000-4000-8000-000000000000")
    assert not b.exists and b.completeness.label == "unknown"
    assert ("Powertools-native", "All workflows") in paths(b)
    b = await bundle(pt, "not-a-uuid")
    assert not b.exists and b.state == "missing"
