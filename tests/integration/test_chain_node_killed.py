"""A node SIGKILLed in the middle of a chain link: the lifeline rescues the link, it runs
again on a surviving node, and its chain continues in order; every link completes once.

Three nodes run as processes of their own (tests/support/chain_node.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from oban import Job

from tests.support.chain_node import QUEUE, KilledLink
from tests.support.composites import composite_nodes
from tests.support.db import ROOT
from tests.support.limits import count, query
from tests.support.waiting import eventually

NODES = ["ck-a", "ck-b", "ck-c"]
KEYS, PER_KEY = 4, 15


def start_node(url: str, name: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.chain_node", url, name],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


LINKS = """
SELECT l.chain_key, l.seq, j.state::text AS state, j.attempted_at, j.completed_at,
       coalesce((j.meta ->> 'rescued')::int, 0) AS rescued
FROM powertools_chain_links l JOIN oban_jobs j ON j.id = l.job_id
ORDER BY l.chain_key, l.seq
"""


async def test_a_link_on_a_killed_node_is_rescued_and_its_chain_continues(
    db_url: str, tmp_path: Path
) -> None:
    logs = {name: tmp_path / f"{name}.log" for name in NODES}
    procs = {name: start_node(db_url, name, logs[name]) for name in NODES}
    try:
        await eventually(
            lambda: all(b"ready" in logs[n].read_bytes() for n in NODES),
            within=30,
            what="three nodes ready",
        )
        # Enqueued from this process (no queues here), links of 150 ms.
        async with composite_nodes(db_url, ["ck-enqueuer"], {}) as (oban,):
            jobs: list[Job] = [
                KilledLink.new({"ms": 150}, chain=f"acct:{k}")
                for _ in range(PER_KEY)
                for k in range(KEYS)
            ]
            await oban.enqueue_many(*jobs)
        victim: list[str] = []

        async def a_node_runs_a_link() -> bool:
            done = await count(
                db_url, "SELECT count(*) AS n FROM oban_jobs WHERE state = 'completed'"
            )
            busy = await query(
                db_url,
                "SELECT attempted_by[1] AS node FROM oban_jobs WHERE state = 'executing' "
                "AND queue = %(q)s LIMIT 1",
                {"q": QUEUE},
            )
            if done >= KEYS * 2 and busy:
                victim.append(busy[0]["node"])
                procs[victim[0]].send_signal(signal.SIGKILL)
                return True
            return False

        await eventually(a_node_runs_a_link, within=30, what="a node runs a link")
        procs[victim[0]].wait(timeout=10)
        await eventually(
            lambda: _all_completed(db_url), within=60, what="every link completed after the kill"
        )
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    links = await query(db_url, LINKS)
    assert len(links) == KEYS * PER_KEY and all(r["state"] == "completed" for r in links)
    assert sum(r["rescued"] for r in links) >= 1  # the killed node's link was rescued
    for before, after in zip(links, links[1:], strict=False):
        if before["chain_key"] == after["chain_key"]:
            # Each link started only after the one before it completed.
            assert after["attempted_at"] >= before["completed_at"], (before, after)
    chains = await query(db_url, "SELECT state FROM powertools_chains")
    assert {c["state"] for c in chains} == {"idle"}


async def _all_completed(url: str) -> bool:
    return (
        await count(
            url,
            "SELECT count(*) AS n FROM oban_jobs WHERE queue = %(q)s AND state <> 'completed'",
            {"q": QUEUE},
        )
        == 0
    )
