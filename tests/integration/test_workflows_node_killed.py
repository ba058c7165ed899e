"""A node SIGKILLed in the middle of a workflow step: the lifeline rescues the step, a
surviving node runs it, the workflow completes and no step completes twice.

Three nodes run as processes of their own (tests/support/workflows_node.py). The step
running when the node dies is the only one executing (the workflow is shaped so), so
"completed once" is exact: a step killed after it did its work but before its ack was
flushed would, as any oban job, run again (at least once)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from oban import Oban
from psycopg_pool import AsyncConnectionPool

from oban_powertools.runtime.instance import install_hooks
from oban_powertools.workflows import Workflow
from tests.support.db import ROOT
from tests.support.limits import query
from tests.support.waiting import eventually
from tests.support.workflows import check_order, close_runs, open_runs, runs, step, workflow_row

NODES = ["wfk-a", "wfk-b", "wfk-c"]


def start_node(url: str, name: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.workflows_node", url, name],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[Oban]:
    """An enqueue-only oban client in the test process (the hooks installed)."""
    install_hooks()
    await open_runs(db_url)
    async with AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as pool:
        yield Oban(pool=pool, node="wfk-client", queues={})
    await close_runs()


async def test_a_node_killed_during_a_step_does_not_stop_the_workflow(
    db_url: str, tmp_path: Path, client: Oban
) -> None:
    logs = {name: tmp_path / f"{name}.log" for name in NODES}
    procs = {name: start_node(db_url, name, logs[name]) for name in NODES}
    wf = Workflow(name="survivor")
    wf.add("a", step(10)).add("long", step(2000), deps=["a"])
    fanout = [f"b{i}" for i in range(12)]
    for name in fanout:
        wf.add(name, step(30), deps=["long"])
    wf.add("z", step(), deps=fanout)
    deps = {name: s.deps for name, s in wf.steps.items()}
    try:
        await eventually(
            lambda: all(b"ready" in logs[n].read_bytes() for n in NODES),
            within=30,
            what="three nodes ready",
        )
        await wf.enqueue(client)
        victim: list[str] = []

        async def long_is_running() -> bool:
            # The step's own run record, not the job's executing state: a node killed
            # between its fetch and the step's first line leaves no run to compare.
            found = await query(
                db_url,
                "SELECT node FROM workflow_runs WHERE step = 'long' AND finished_at IS NULL",
            )
            if found:
                victim.append(found[0]["node"])
                procs[victim[0]].send_signal(signal.SIGKILL)
                return True
            return False

        await eventually(long_is_running, within=30, what="the long step runs")
        procs[victim[0]].wait(timeout=10)

        async def completed() -> bool:
            return bool((await workflow_row(db_url, wf.id))["state"] == "completed")

        await eventually(completed, within=60, what="the workflow completed after the kill")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    records = await runs(db_url)
    finished = check_order(records, deps)  # each step completed once, in order
    long_runs = [r for r in records if r["step"] == "long"]
    assert len(long_runs) == 2 and long_runs[0]["node"] == victim[0]
    assert long_runs[0]["finished_at"] is None  # killed mid-step
    assert finished["long"]["node"] != victim[0]  # rescued, run by a survivor
    rescued = await query(
        db_url,
        "SELECT (meta ->> 'rescued')::int AS rescued FROM oban_jobs "
        "WHERE meta ->> 'workflow_step' = 'long'",
    )
    assert rescued == [{"rescued": 1}]
