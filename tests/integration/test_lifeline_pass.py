"""One lifeline pass against the database: two leaders passing at once rescue each orphan
exactly once between them; a job on a live producer, a young heartbeat and a finished
job are left alone; a job with no attempt left is discarded; the pass is audited once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from oban_powertools import Powertools
from oban_powertools.db import Database
from oban_powertools.runtime.lifeline import Lifeline
from tests.support.seams import make_powertools

ORPHANS = 400

PRODUCER = (
    "INSERT INTO oban_producers (uuid, name, node, queue, meta, updated_at) "
    "VALUES (%(uuid)s, 'Oban', %(node)s, 'work', '{}', "
    "timezone('UTC', now()) - make_interval(secs => %(age)s))"
)
JOBS = (
    "INSERT INTO oban_jobs (state, queue, worker, args, attempt, max_attempts, attempted_at, "
    "attempted_by) SELECT %(state)s::oban_job_state, 'work', 'app.Work', '{}', %(attempt)s, "
    "%(max)s, timezone('UTC', now()) - interval '10 minutes', ARRAY[%(node)s, %(uuid)s] "
    "FROM generate_series(1, %(n)s) RETURNING id"
)


@pytest.fixture
async def pt(db_url: str) -> AsyncIterator[Powertools]:
    powertools = make_powertools(db_url, lifeline_grace_seconds=30)
    async with powertools:
        yield powertools


async def insert(pt: Powertools, **values: Any) -> list[int]:
    params = {"state": "executing", "attempt": 1, "max": 5, "n": 1, **values}
    async with pt.db.connection() as conn:
        cur = await conn.execute(JOBS, params)
        return [int(r["id"]) for r in await cur.fetchall()]


async def test_two_leaders_passing_at_once_rescue_each_orphan_exactly_once(
    pt: Powertools, db_url: str
) -> None:
    dead, live, young = (str(uuid.uuid4()) for _ in range(3))
    async with pt.db.connection() as conn:
        await conn.execute(PRODUCER, {"uuid": dead, "node": "dead", "age": 120})
        await conn.execute(PRODUCER, {"uuid": live, "node": "alive", "age": 1})
        await conn.execute(PRODUCER, {"uuid": young, "node": "late", "age": 20})
    orphans = await insert(pt, node="dead", uuid=dead, n=ORPHANS)
    gone = await insert(pt, node="vanished", uuid=str(uuid.uuid4()))  # no producer row
    spent = await insert(pt, node="dead", uuid=dead, attempt=3, max=3)
    running = await insert(pt, node="alive", uuid=live, n=5)  # 10 minutes, live: kept
    late = await insert(pt, node="late", uuid=young)  # heartbeat 20 s old, grace 30 s
    finished = await insert(pt, state="completed", node="dead", uuid=dead)

    async with Database(db_url) as a, Database(db_url) as b:
        first = Lifeline(lambda: a, grace=lambda: 30.0, node="leader-a", limit=150)
        second = Lifeline(lambda: b, grace=lambda: 30.0, node="leader-b", limit=150)
        passes = []
        for _ in range(5):  # both at once, each taking up to 150 a pass
            passes += await asyncio.gather(first.rescue(), second.rescue())
    rescued = Counter(i for p in passes for i in p.rescued)
    discarded = Counter(i for p in passes for i in p.discarded)
    assert set(rescued) == {*orphans, *gone} and max(rescued.values()) == 1
    assert set(discarded) == set(spent) and max(discarded.values()) == 1
    assert sum(bool(p.rescued) for p in passes) >= 3  # the work was shared out

    async with pt.db.connection() as conn:
        cur = await conn.execute(
            "SELECT id, state::text AS state, attempt, jsonb_array_length(errors) AS errors, "
            "(meta->>'rescued')::int AS rescued FROM oban_jobs"
        )
        rows = {r["id"]: r for r in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT detail FROM powertools_audit_events WHERE action = 'lifeline.rescued'"
        )
        events = [r["detail"] for r in await cur.fetchall()]
    for job in [*orphans, *gone]:
        assert (rows[job]["state"], rows[job]["attempt"], rows[job]["errors"]) == (
            "available",
            1,
            1,
        )
        assert rows[job]["rescued"] == 1
    assert rows[spent[0]]["state"] == "discarded" and rows[spent[0]]["errors"] == 1
    for job in [*running, *late]:
        assert rows[job]["state"] == "executing" and rows[job]["errors"] == 0
    assert rows[finished[0]]["state"] == "completed"
    # One event per pass that changed something, the ids of all of them once in all.
    assert len(events) == sum(p.changed for p in passes)
    audited = Counter(i for e in events for i in e["rescued"] + e["discarded"])
    assert set(audited) == {*orphans, *gone, *spent} and max(audited.values()) == 1
    assert {e["leader_node"] for e in events} <= {"leader-a", "leader-b"}
