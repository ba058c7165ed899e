"""The leader's repair of missed releases: paths around the ack hook (oban's cancel,
plain SQL) leave steps waiting; the repair finishes and releases them, audited."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from oban import Oban, telemetry, worker
from psycopg_pool import AsyncConnectionPool

from oban_powertools.runtime import Runtime
from oban_powertools.workflows import Workflow
from tests.support.limits import query
from tests.support.seams import make_powertools
from tests.support.waiting import eventually


@worker(queue="wf-repair")
class Noop:
    async def process(self, job: Any) -> None:
        return None


@pytest.fixture
async def node(db_url: str) -> AsyncIterator[tuple[Oban, Runtime]]:
    powertools = make_powertools(db_url)
    async with powertools, AsyncConnectionPool(db_url, min_size=1, max_size=6, open=False) as pool:
        runtime = Runtime(
            powertools, declarations=[], import_oban_cron=False, workflow_repair_interval=0.2
        )
        # No queue: steps move only as the test moves them, around the ack hook.
        oban = Oban(
            pool=pool, node="wf-repair", queues={}, leadership=True, **runtime.oban_options()
        )
        await oban.start()
        try:
            yield oban, runtime
        finally:
            await oban.stop()


@pytest.fixture
def repaired_events() -> Iterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    telemetry.attach(
        "wf-repair-test", ["oban_powertools.workflow.repaired"], lambda _, m: seen.append(m)
    )
    yield seen
    telemetry.detach("wf-repair-test")


async def job_states(url: str) -> dict[str, str]:
    found = await query(
        url, "SELECT meta ->> 'workflow_step' AS step, state::text FROM oban_jobs ORDER BY id"
    )
    return {r["step"]: r["state"] for r in found}


async def test_steps_finished_around_the_ack_hook_are_repaired_by_the_leader(
    db_url: str, node: tuple[Oban, Runtime], repaired_events: list[dict[str, Any]]
) -> None:
    oban, _ = node
    wf = Workflow(name="bypassed")
    wf.add("a", Noop.new({})).add("b", Noop.new({}), deps=["a"])
    wf.add("c", Noop.new({})).add("d", Noop.new({}), deps=["c"])
    jobs = {j.meta["workflow_step"]: j for j in await wf.enqueue(oban)}
    await query(
        db_url,
        "UPDATE oban_jobs SET state = 'completed', completed_at = now() WHERE id = %(id)s "
        "RETURNING id",
        {"id": jobs["a"].id},
    )
    await oban.cancel_job(jobs["c"].id)  # oban's own cancel: no hook sees it

    async def repaired() -> bool:
        return await job_states(db_url) == {
            "a": "completed",
            "b": "available",
            "c": "cancelled",
            "d": "cancelled",
        }

    await eventually(repaired, within=10, what="the repair released b and cancelled d")
    steps = await query(
        db_url,
        "SELECT name, outcome, cancelled_by FROM powertools_workflow_steps ORDER BY name",
    )
    assert steps == [
        {"name": "a", "outcome": "completed", "cancelled_by": None},
        {"name": "b", "outcome": None, "cancelled_by": None},
        {"name": "c", "outcome": "cancelled", "cancelled_by": None},
        {"name": "d", "outcome": "cancelled", "cancelled_by": "workflow dependency c cancelled"},
    ]
    events = await query(
        db_url,
        "SELECT action, resource_type, resource_id, principal_type, surface, detail "
        "FROM powertools_audit_events WHERE action = 'workflow.repaired'",
    )
    assert len(events) >= 1
    assert {(e["resource_type"], e["resource_id"], e["surface"]) for e in events} == {
        ("workflow", str(wf.id), "system")
    }
    finished = sorted(s for e in events for s in e["detail"]["steps_finished"])
    assert finished == ["a", "c"]
    assert repaired_events and repaired_events[0]["workflow_ids"] == [str(wf.id)]


async def test_a_release_lost_after_the_dependency_finished_is_repaired(
    db_url: str, node: tuple[Oban, Runtime]
) -> None:
    oban, runtime = node
    wf = Workflow(name="lost").add("a", Noop.new({})).add("b", Noop.new({}), deps=["a"])
    jobs = await wf.enqueue(oban)
    # As if the step had been recorded but its dependent's release lost (SQL, a bug):
    await query(
        db_url,
        "WITH j AS (UPDATE oban_jobs SET state = 'completed' WHERE id = %(id)s RETURNING id) "
        "UPDATE powertools_workflow_steps SET outcome = 'completed', finished_at = now() "
        "WHERE name = 'a' RETURNING name",
        {"id": jobs[0].id},
    )

    async def released() -> bool:
        return (await job_states(db_url))["b"] == "available"

    await eventually(released, within=10, what="b released by the repair")
    assert runtime.workflow_repair is not None and runtime.workflow_repair.last is not None
    found = await query(db_url, "SELECT pending FROM powertools_workflow_steps WHERE name = 'b'")
    assert found == [{"pending": 0}]
