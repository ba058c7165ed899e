"""A node SIGKILLed mid-run: the global limit still holds, its jobs are rescued by the
lifeline, every job completes.

Three nodes run as processes of their own (tests/support/limits_node.py). The killed
node's executing rows keep counting against the limit until the lifeline makes them
available again (its producer's heartbeat 2 s old): conservative by design, a crashed node never lets the others
exceed the limit, and its jobs are not lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from oban.worker import worker_name

from tests.support.db import ROOT
from tests.support.limits import Sampler, count, query
from tests.support.limits_node import QUEUE, KilledJob
from tests.support.waiting import eventually

GLOBAL_LIMIT = 4
JOBS = 600
NODES = ["killed-a", "killed-b", "killed-c"]

INSERT = """
INSERT INTO oban_jobs (worker, queue, args, state)
SELECT %(worker)s, %(queue)s, jsonb_build_object('n', n, 'ms', ms), 'available'
FROM unnest(%(ms)s::int[]) WITH ORDINALITY AS u(ms, n)
RETURNING id
"""

EXECUTING_BY = """
SELECT attempted_by[1] AS node, count(*) AS n FROM oban_jobs
WHERE queue = %(queue)s AND state = 'executing' GROUP BY 1 ORDER BY 2 DESC, 1
"""


def start_node(url: str, name: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.limits_node", url, name, str(GLOBAL_LIMIT)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_a_killed_node_neither_breaks_the_global_limit_nor_loses_jobs(
    db_url: str, tmp_path: Path
) -> None:
    logs = {name: tmp_path / f"{name}.log" for name in NODES}
    procs = {name: start_node(db_url, name, logs[name]) for name in NODES}
    sampler = Sampler(db_url, QUEUE)
    try:
        await eventually(
            lambda: all(b"ready" in logs[n].read_bytes() for n in NODES),
            within=30,
            what="three nodes ready",
        )
        sampler.start()
        rng = random.Random(17)
        await query(
            db_url,
            INSERT,
            {
                "worker": worker_name(KilledJob),
                "queue": QUEUE,
                "ms": [rng.randint(10, 100) for _ in range(JOBS)],
            },
        )
        completed = (
            "SELECT count(*) AS n FROM oban_jobs WHERE queue = %(queue)s AND state = 'completed'"
        )

        victim: list[str] = []

        async def a_node_is_busy() -> bool:
            done = await count(db_url, completed, {"queue": QUEUE})
            busy = await query(db_url, EXECUTING_BY, {"queue": QUEUE})
            if done >= JOBS // 4 and busy and busy[0]["n"] >= 2:
                victim.append(busy[0]["node"])
                procs[victim[0]].send_signal(signal.SIGKILL)
                return True
            return False

        await eventually(a_node_is_busy, within=30, what="a node runs jobs a quarter in")
        procs[victim[0]].wait(timeout=10)
        await eventually(
            lambda: _all_done(db_url),
            within=40,
            what="every job completed after the kill",
        )
        await sampler.stop()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    assert sampler.samples > 100
    assert sampler.max_total <= GLOBAL_LIMIT, f"{sampler.max_total} executing, limit {GLOBAL_LIMIT}"
    rescued = await query(
        db_url,
        "SELECT count(*) AS n, count(*) FILTER (WHERE attempted_by[1] = %(victim)s) AS by_victim "
        "FROM oban_jobs WHERE queue = %(queue)s AND (meta ->> 'rescued')::int >= 1",
        {"queue": QUEUE, "victim": victim[0]},
    )
    # The killed node's jobs were rescued and then run by the survivors.
    assert rescued[0]["n"] >= 2 and rescued[0]["by_victim"] == 0
    nodes = await query(
        db_url,
        "SELECT DISTINCT attempted_by[1] AS node FROM oban_jobs WHERE queue = %(queue)s",
        {"queue": QUEUE},
    )
    assert {r["node"] for r in nodes} == set(NODES)
    print(
        f"killed {victim[0]}: max executing {sampler.max_total}/{GLOBAL_LIMIT}, rescued {rescued}"
    )


async def _all_done(url: str) -> bool:
    return (
        await count(
            url,
            "SELECT count(*) AS n FROM oban_jobs WHERE queue = %(queue)s AND state <> 'completed'",
            {"queue": QUEUE},
        )
        == 0
    )
