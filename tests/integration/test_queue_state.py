"""Stored queue decisions survive node restarts and lost notifications (real oban nodes)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from oban import Job, Oban, telemetry, worker
from oban.worker import worker_name
from psycopg_pool import AsyncConnectionPool

from oban_powertools import Powertools
from oban_powertools.db import oban_jobs
from oban_powertools.runtime import Runtime
from tests.support.seams import OPERATOR, make_powertools
from tests.support.waiting import eventually

RAN: list[int] = []


@worker(queue="mailers")
class Deliver:
    async def process(self, job: Job) -> None:
        RAN.append(job.id or 0)


@pytest.fixture
async def pt(db_url: str) -> AsyncIterator[Powertools]:
    RAN.clear()
    powertools = make_powertools(db_url)
    async with powertools:
        yield powertools


class Node:
    def __init__(self, db_url: str, pt: Powertools, name: str) -> None:
        self.pool = AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False)
        self.runtime = Runtime(
            pt, declarations=[], import_oban_cron=False, queue_state_interval=0.2
        )
        self.oban = Oban(
            pool=self.pool,
            node=name,
            queues={"mailers": 5},
            **self.runtime.oban_options(stager={"interval": 0.1}),
        )
        self.running = False

    async def start(self) -> Node:
        await self.pool.open()
        await self.oban.start()
        self.running = True
        return self

    async def stop(self) -> None:
        if self.running:
            self.running = False
            await self.oban.stop()
            await self.pool.close()

    def queue(self) -> Any:
        info = self.oban.check_queue("mailers")
        assert info is not None
        return info


@pytest.fixture
async def nodes() -> AsyncIterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in started:
        await node.stop()


async def enqueue(pt: Powertools, count: int) -> list[int]:
    async with pt.db.transaction() as conn:
        return [
            await oban_jobs.insert_job(
                conn,
                "public",
                worker=worker_name(Deliver),
                queue="mailers",
                args={"n": n},
                meta={},
            )
            for n in range(count)
        ]


async def states(pt: Powertools, ids: list[int]) -> list[str]:
    async with pt.db.connection() as conn:
        cur = await conn.execute(
            "SELECT state::text AS state FROM oban_jobs WHERE id = ANY(%s) ORDER BY id", (ids,)
        )
        return [r["state"] for r in await cur.fetchall()]


async def producer_meta(pt: Powertools, node: str) -> dict[str, Any]:
    async with pt.db.connection() as conn:
        cur = await conn.execute(
            "SELECT meta FROM oban_producers WHERE node = %s AND queue = 'mailers'", (node,)
        )
        row = await cur.fetchone()
    return {} if row is None else dict(row["meta"])


async def test_a_paused_queue_stays_paused_across_a_restart(
    pt: Powertools, db_url: str, nodes: list[Node]
) -> None:
    first = await Node(db_url, pt, "worker-1").start()
    nodes.append(first)
    await pt.operator.pause_queue(OPERATOR, "mailers", reason="provider outage")
    await eventually(lambda: first.queue().paused)
    await first.stop()

    ids = await enqueue(pt, 3)
    restarted = await Node(db_url, pt, "worker-1").start()
    nodes.append(restarted)
    assert restarted.queue().paused  # before oban's stager could wake the producer
    # Several stager passes (each one notifies the queue's producers): nothing is fetched.
    passes = StagerPasses()
    with passes.attached():
        await eventually(lambda: passes.count >= 5, what="five stager passes")
    assert await states(pt, ids) == ["available"] * 3 and RAN == []
    # the producer state published in oban_producers says so too
    await eventually(lambda: _meta_says(pt, "worker-1", "paused", True))

    await pt.operator.resume_queue(OPERATOR, "mailers", reason="provider is back")
    await eventually(lambda: states_are(pt, ids, "completed"))
    assert sorted(RAN) == ids


async def test_a_scaled_queue_keeps_its_limit_across_a_restart(
    pt: Powertools, db_url: str, nodes: list[Node]
) -> None:
    first = await Node(db_url, pt, "worker-1").start()
    nodes.append(first)
    assert first.queue().limit == 5
    await pt.operator.scale_queue(OPERATOR, "mailers", 2, reason="rate limited upstream")
    await eventually(lambda: first.queue().limit == 2)
    await first.stop()

    restarted = await Node(db_url, pt, "worker-1").start()
    nodes.append(restarted)
    assert restarted.queue().limit == 2 and not restarted.queue().paused
    await eventually(lambda: _meta_says(pt, "worker-1", "local_limit", 2))


async def test_a_lost_notification_is_repaired_within_seconds(
    pt: Powertools, db_url: str, nodes: list[Node]
) -> None:
    node = await Node(db_url, pt, "worker-1").start()
    nodes.append(node)
    # A decision committed without its NOTIFY (as if the notification were lost).
    async with pt.db.connection() as conn:
        await conn.execute(
            "INSERT INTO powertools_queue_states (queue, paused, limit_override) "
            "VALUES ('mailers', true, 3)"
        )
    await eventually(lambda: node.queue().paused and node.queue().limit == 3, within=2)

    # Between decisions the applier does not fight the host's own calls ...
    await node.oban.resume_queue("mailers")
    # Let the applier's periodic pass (the one that repaired the lost notification) run
    # a few more times: it must leave the host's resume alone.
    passes = count_calls(node.runtime.applier, "apply")
    await eventually(lambda: passes.count >= 3, what="three applier passes")
    assert not node.queue().paused
    # ... and the next decision (a new version) is applied again.
    async with pt.db.connection() as conn:
        await conn.execute(
            "UPDATE powertools_queue_states SET paused = true, version = version + 1"
        )
    await eventually(lambda: node.queue().paused, within=2)


class StagerPasses:
    """Counts completed passes of oban's stager through its telemetry span."""

    def __init__(self) -> None:
        self.count = 0
        self._id = f"test-stager-{uuid.uuid4().hex[:8]}"

    def _handle(self, _event: str, _meta: dict[str, Any]) -> None:
        self.count += 1

    @contextmanager
    def attached(self) -> Iterator[None]:
        telemetry.attach(self._id, ["oban.stager.stage.stop"], self._handle)
        try:
            yield
        finally:
            telemetry.detach(self._id)


@dataclass
class CallCount:
    count: int = 0


def count_calls(obj: Any, method: str) -> CallCount:
    """Wrap one bound method of ``obj`` to count its calls (the object still does the work)."""
    calls = CallCount()
    original = getattr(obj, method)

    async def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            return await original(*args, **kwargs)
        finally:
            calls.count += 1

    setattr(obj, method, counted)
    return calls


async def _meta_says(pt: Powertools, node: str, key: str, value: Any) -> bool:
    return (await producer_meta(pt, node)).get(key) == value


async def states_are(pt: Powertools, ids: list[int], state: str) -> bool:
    return await states(pt, ids) == [state] * len(ids)
