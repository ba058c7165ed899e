"""An operator's set_queue_limits decision survives a node restart: the restarted node, whose
code still declares the old number, keeps the decision and its fetch honours it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from oban import Job, Oban, telemetry, worker
from psycopg_pool import AsyncConnectionPool

from oban_powertools import Powertools
from oban_powertools.limits.store import load_stored
from oban_powertools.runtime import Runtime
from tests.support.seams import OPERATOR, make_powertools
from tests.support.waiting import eventually

QUEUES = {"exports": {"limit": 10, "global_limit": 5}}


class Gate:
    """Jobs run until the test opens the gate; counts how many run at once."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.running = 0
        self.most = 0
        self.done = 0


GATE = Gate()


@worker(queue="exports")
class SlowExport:
    async def process(self, job: Job) -> None:
        GATE.running += 1
        GATE.most = max(GATE.most, GATE.running)
        try:
            await GATE.open.wait()
        finally:
            GATE.running -= 1
            GATE.done += 1


class LimitedFetches:
    """Counts the limiter's fetches of a queue that its global limit held back."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.count = 0
        self._id = f"test-limiter-{uuid.uuid4().hex[:8]}"

    def _handle(self, _event: str, meta: dict[str, Any]) -> None:
        if meta["queue"] == self.queue and "global_limit" in meta["limited_by"]:
            self.count += 1

    @contextmanager
    def attached(self) -> Iterator[None]:
        telemetry.attach(self._id, ["oban_powertools.limiter.fetch"], self._handle)
        try:
            yield
        finally:
            telemetry.detach(self._id)


@pytest.fixture
async def pt(db_url: str) -> AsyncIterator[Powertools]:
    global GATE
    GATE = Gate()
    powertools = make_powertools(db_url)
    async with powertools:
        yield powertools


class Node:
    def __init__(self, db_url: str, pt: Powertools) -> None:
        self.pool = AsyncConnectionPool(db_url, min_size=1, max_size=6, open=False)
        runtime = Runtime(pt, declarations=[], import_oban_cron=False, queue_state_interval=0.2)
        self.oban = Oban(
            pool=self.pool,
            node="worker-1",
            queues=QUEUES,
            **runtime.oban_options(stager={"interval": 0.1}),
        )

    async def __aenter__(self) -> Node:
        await self.pool.open()
        await self.oban.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        GATE.open.set()  # let running jobs finish so the node stops promptly
        await self.oban.stop()
        await self.pool.close()


async def stored(pt: Powertools) -> Any:
    async with pt.db.connection() as conn:
        return (await load_stored(conn))["exports"]


async def test_a_restarted_node_comes_back_with_the_operators_limit(
    pt: Powertools, db_url: str
) -> None:
    async with Node(db_url, pt):
        first = await stored(pt)
        assert first.limits.global_limit is not None and first.limits.global_limit.allowed == 5
        await pt.operator.set_queue_limits(
            OPERATOR, "exports", global_limit=2, reason="the export API throttles us"
        )

    async with Node(db_url, pt) as restarted:
        limits = await stored(pt)
        # The code still declares 5; the operator's 2 applies, and both are shown.
        assert limits.limits.global_limit is not None and limits.limits.global_limit.allowed == 2
        assert limits.declared == {"global_limit": 5}
        assert limits.decided and limits.decided_by_id == "ops-demo"
        assert limits.reason == "the export API throttles us"

        GATE.open.clear()
        held = LimitedFetches("exports")
        with held.attached():
            await restarted.oban.enqueue_many(*[SlowExport.new({"n": n}) for n in range(6)])
            await eventually(lambda: GATE.running == 2, what="two exports running")
            # Several fetches meanwhile, each held back by the global limit of 2.
            await eventually(lambda: held.count >= 3, what="three limited fetches")
            assert GATE.running == 2 and GATE.most == 2
            GATE.open.set()
            await eventually(lambda: GATE.done == 6, what="all six exports done", within=30)
        assert GATE.most == 2
