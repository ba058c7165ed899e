"""The accurate lifeline with real oban nodes in processes of their own
(tests/support/lifeline_node.py): a SIGKILLed node's running jobs are rescued once its
producer's heartbeat is older than the grace, each exactly once, and all complete; a job
running on a live node longer than oban's ``rescue_after`` is never run twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from oban.worker import worker_name

from tests.support.db import ROOT
from tests.support.lifeline_node import GRACE, HEARTBEAT, INTERVAL, QUEUE, RESCUE_AFTER, CountedJob
from tests.support.limits import count, query
from tests.support.waiting import eventually

JOBS = 100

CREATE_RUNS = """
CREATE TABLE IF NOT EXISTS lifeline_runs (
    job_id bigint NOT NULL, attempt int NOT NULL, node text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp())
"""

INSERT = """
INSERT INTO oban_jobs (worker, queue, args, state, max_attempts)
SELECT %(worker)s, %(queue)s, jsonb_build_object('slow_on', %(slow_on)s::text,
       'seconds', %(seconds)s::float, 'n', n), 'available', 5
FROM generate_series(1, %(n)s) AS n
RETURNING id
"""


class Nodes:
    def __init__(self, url: str, logs: Path) -> None:
        self.url = url
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, limit: int, *, leader: bool = False) -> None:
        log = self.logs / f"{name}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        argv = [sys.executable, "-m", "tests.support.lifeline_node", self.url, name, str(limit)]
        with log.open("wb") as out:
            self.procs[name] = subprocess.Popen(
                [*argv, "leader" if leader else "follower"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, name: str) -> None:
        log = self.logs / f"{name}.log"
        await eventually(lambda: b"ready" in log.read_bytes(), within=30, what=f"{name} ready")

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def nodes(db_url: str, tmp_path: Path) -> Iterator[Nodes]:
    started = Nodes(db_url, tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


async def _execute(url: str, statement: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(statement)  # type: ignore[arg-type]


async def _insert(url: str, *, slow_on: str, seconds: float, n: int) -> list[int]:
    rows = await query(
        url,
        INSERT,
        {
            "worker": worker_name(CountedJob),
            "queue": QUEUE,
            "slow_on": slow_on,
            "seconds": seconds,
            "n": n,
        },
    )
    return [int(r["id"]) for r in rows]


async def _state_count(url: str, state: str) -> int:
    return await count(
        url,
        "SELECT count(*) AS n FROM oban_jobs WHERE queue = %(q)s AND state = %(s)s::oban_job_state",
        {"q": QUEUE, "s": state},
    )


async def test_a_killed_nodes_jobs_are_rescued_once_after_the_grace_and_all_complete(
    db_url: str, nodes: Nodes
) -> None:
    await _execute(db_url, CREATE_RUNS)
    nodes.start("leader", 0, leader=True)
    await nodes.ready("leader")
    nodes.start("victim", JOBS)
    await nodes.ready("victim")
    ids = await _insert(db_url, slow_on="victim", seconds=3600, n=JOBS)

    async def all_running_on_victim() -> bool:
        runs = await count(
            db_url, "SELECT count(*) AS n FROM lifeline_runs WHERE node = 'victim'", {}
        )
        return runs == JOBS and await _state_count(db_url, "executing") == JOBS

    await eventually(all_running_on_victim, within=30, what="100 jobs running on the victim")
    nodes.kill("victim")
    killed = time.monotonic()
    rescued_after: list[float] = []

    async def all_rescued() -> bool:
        if await _state_count(db_url, "executing"):
            return False
        rescued_after.append(time.monotonic() - killed)
        return True

    await eventually(all_rescued, within=GRACE + INTERVAL + 10, what="the victim's jobs rescued")
    elapsed = rescued_after[0]
    print(f"100 jobs rescued {elapsed:.2f} s after the kill (grace {GRACE}, interval {INTERVAL})")
    # Not before the heartbeat is older than the grace (the last one was at most one
    # refresh before the kill), and within the grace plus one lifeline interval (plus
    # the time a pass and a loaded machine take).
    assert elapsed >= GRACE - HEARTBEAT - 0.1
    assert elapsed <= GRACE + INTERVAL + 1.5
    assert await _state_count(db_url, "available") == JOBS

    jobs = await query(
        db_url,
        "SELECT id, attempt, (meta->>'rescued')::int AS rescued, jsonb_array_length(errors) AS "
        "errors, errors->-1->>'error' AS error FROM oban_jobs WHERE id = ANY(%(ids)s)",
        {"ids": ids},
    )
    assert len(jobs) == JOBS
    for job in jobs:
        assert (job["attempt"], job["rescued"], job["errors"]) == (1, 1, 1), job
        assert "executing on node victim whose producer" in job["error"]
        assert "stopped heartbeating at" in job["error"]

    events = await query(
        db_url,
        "SELECT principal_id, surface, detail FROM powertools_audit_events "
        "WHERE action = 'lifeline.rescued' ORDER BY id",
        {},
    )
    assert events and all(e["principal_id"] == "system" for e in events)
    assert all(e["surface"] == "system" for e in events)
    audited = [i for e in events for i in e["detail"]["rescued"]]
    assert sorted(audited) == sorted(ids)  # every job once, in one event or a few
    assert {p["node"] for e in events for p in e["detail"]["orphaned_producers"]} == {"victim"}

    nodes.start("finisher", 20)
    await nodes.ready("finisher")
    await eventually(lambda: _all_completed(db_url), within=60, what="every rescued job completed")
    runs = await query(
        db_url,
        "SELECT job_id, count(*) AS n, array_agg(node ORDER BY at) AS nodes "
        "FROM lifeline_runs GROUP BY job_id",
        {},
    )
    assert len(runs) == JOBS
    # Each job ran twice: killed on the victim, once more on the finisher; never a third.
    assert all(r["n"] == 2 and r["nodes"] == ["victim", "finisher"] for r in runs), runs[:3]


async def _all_completed(url: str) -> bool:
    return await _state_count(url, "completed") == JOBS


async def test_a_live_nodes_long_job_is_never_rescued_but_an_orphan_beside_it_is(
    db_url: str, nodes: Nodes
) -> None:
    await _execute(db_url, CREATE_RUNS)
    nodes.start("steady", 5, leader=True)
    await nodes.ready("steady")
    seconds = RESCUE_AFTER + GRACE + 4 * INTERVAL  # well past oban's rescue_after and grace
    (long_id,) = await _insert(db_url, slow_on="steady", seconds=seconds, n=1)
    await eventually(
        lambda: _state_count(db_url, "executing"), within=20, what="the long job running"
    )
    # An orphan of a producer that never existed, executing for a minute already: the
    # lifeline runs while the long job does, and rescues this one only.
    ghost = await query(
        db_url,
        "INSERT INTO oban_jobs (worker, queue, args, state, attempt, attempted_at, "
        "attempted_by) VALUES (%(worker)s, 'ghosts', '{}', 'executing', 1, "
        "timezone('UTC', now()) - interval '1 minute', ARRAY['ghost-node', %(producer)s]) "
        "RETURNING id",
        {"worker": worker_name(CountedJob), "producer": str(uuid.uuid4())},
    )
    ghost_id = int(ghost[0]["id"])

    async def ghost_rescued() -> bool:
        rows = await query(
            db_url, "SELECT state::text AS state FROM oban_jobs WHERE id = %(id)s", {"id": ghost_id}
        )
        return rows[0]["state"] == "available"

    await eventually(ghost_rescued, within=GRACE + INTERVAL + 10, what="the ghost rescued")
    await eventually(
        lambda: _state_count(db_url, "completed"), within=seconds + 20, what="the long job done"
    )
    job = await query(
        db_url,
        "SELECT attempt, meta, errors, completed_at - attempted_at AS ran FROM oban_jobs "
        "WHERE id = %(id)s",
        {"id": long_id},
    )
    assert job[0]["attempt"] == 1 and "rescued" not in job[0]["meta"] and job[0]["errors"] == []
    assert job[0]["ran"].total_seconds() >= RESCUE_AFTER + GRACE
    runs = await count(
        db_url, "SELECT count(*) AS n FROM lifeline_runs WHERE job_id = %(id)s", {"id": long_id}
    )
    assert runs == 1
