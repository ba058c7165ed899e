"""Context passing and release telemetry: a step reads its dependencies' recorded
results; a release is announced and fast (notification, not the stager's poll)."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from oban import Oban, telemetry
from psycopg_pool import AsyncConnectionPool

from oban_powertools import Workflow, WorkflowError, typed_worker, workflow_results
from oban_powertools.runtime import Runtime
from tests.support.limits import query
from tests.support.seams import make_powertools
from tests.support.waiting import eventually
from tests.support.workflows import workflow_row

QUEUE = "wf-context"
seen: dict[str, Any] = {}


@dataclass
class Numbers:
    n: int


@typed_worker(queue=QUEUE, args=Numbers)
class Produce:
    async def perform(self, args: Numbers, job: Any) -> dict[str, int]:
        return {"value": args.n * 10}


@typed_worker(queue=QUEUE, args=Numbers)
class Combine:
    async def perform(self, args: Numbers, job: Any) -> int:
        results = await workflow_results(job)
        seen["results"] = results
        return sum(r["value"] for r in results.values() if r is not None)


@pytest.fixture
async def oban(db_url: str) -> AsyncIterator[Oban]:
    powertools = make_powertools(db_url)
    async with powertools, AsyncConnectionPool(db_url, min_size=1, max_size=6, open=False) as pool:
        runtime = Runtime(powertools, declarations=[], import_oban_cron=False)
        # A 10 s stager poll: a release that waited for the poll would show in the latency.
        node = Oban(
            pool=pool,
            node="wf-ctx",
            queues={QUEUE: 5},
            **runtime.oban_options(stager={"interval": 10.0}),
        )
        async with node:
            yield node


@pytest.fixture
def released() -> Iterator[list[tuple[float, dict[str, Any]]]]:
    events: list[tuple[float, dict[str, Any]]] = []
    telemetry.attach(
        "wf-released-test",
        ["oban_powertools.workflow.released"],
        lambda _, meta: events.append((time.monotonic(), meta)),
    )
    yield events
    telemetry.detach("wf-released-test")


async def test_a_step_reads_its_dependencies_results(
    db_url: str, oban: Oban, released: list[tuple[float, dict[str, Any]]]
) -> None:
    wf = Workflow(name="context")
    wf.add("left", Produce.new(Numbers(1))).add("right", Produce.new(Numbers(2)))
    wf.add("sum", Combine.new(Numbers(0)), deps=["left", "right"])
    jobs = await wf.enqueue(oban)

    async def done() -> bool:
        return bool((await workflow_row(db_url, wf.id))["state"] == "completed")

    await eventually(done, within=15, what="the workflow completed")
    assert seen["results"] == {"left": {"value": 10}, "right": {"value": 20}}
    # The release of "sum" was announced, naming its job.
    assert any(jobs[2].id in meta["released_job_ids"] for _, meta in released)
    assert all(meta["source"] == "ack" for _, meta in released)
    with pytest.raises(WorkflowError, match="not a workflow step"):
        await workflow_results(Produce.new(Numbers(3)), oban)


async def test_a_dependent_is_released_and_started_without_waiting_for_the_stager(
    db_url: str, oban: Oban
) -> None:
    wf = Workflow(name="latency")
    previous = "s0"
    wf.add(previous, Produce.new(Numbers(0)))
    for i in range(1, 10):
        wf.add(f"s{i}", Produce.new(Numbers(i)), deps=[previous])
        previous = f"s{i}"
    await wf.enqueue(oban)

    async def done() -> bool:
        return bool((await workflow_row(db_url, wf.id))["state"] == "completed")

    await eventually(done, within=30, what="the chain completed")
    found = await query(
        db_url,
        "SELECT attempted_at, completed_at FROM oban_jobs ORDER BY (meta ->> 'workflow_step')",
    )
    # Each step started right after its upstream completed (released by the upstream's
    # ack and fetched at once), never a 10 s stager poll later.
    gaps = [
        (b["attempted_at"] - a["completed_at"]).total_seconds()
        for a, b in itertools.pairwise(found)
    ]
    assert max(gaps) < 2.0, gaps
