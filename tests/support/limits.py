"""Helpers for the limiter's proofs: several oban nodes on one database, and a sampler
that watches how many of a queue's jobs execute at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from oban import Oban
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from oban_powertools.runtime import Runtime
from tests.support.seams import make_powertools

SAMPLE_EVERY = 0.01

EXECUTING = """
SELECT coalesce(args ->> %(key)s, '') AS part, count(*) AS n
FROM oban_jobs WHERE queue = %(queue)s AND state = 'executing'
GROUP BY 1
"""


@dataclass
class Sampler:
    """Counts the queue's executing rows every 10 ms (in total, and per value of the args
    key ``key`` when given); keeps the highest counts seen."""

    url: str
    queue: str
    key: str = ""
    samples: int = 0
    max_total: int = 0
    max_partition: int = 0
    _task: asyncio.Task[None] | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _run(self) -> None:
        async with await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, row_factory=dict_row
        ) as conn:
            while not self._stop.is_set():
                cur = await conn.execute(EXECUTING, {"queue": self.queue, "key": self.key})
                counts = [int(r["n"]) for r in await cur.fetchall()]
                self.samples += 1
                self.max_total = max(self.max_total, sum(counts))
                self.max_partition = max(self.max_partition, *counts, 0)
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), SAMPLE_EVERY)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task


@dataclass
class Concurrency:
    """What the workers of one process see: jobs in ``process`` right now, in total and
    per partition, and the most seen at once."""

    now: int = 0
    peak: int = 0
    by_part: dict[str, int] = field(default_factory=dict)
    peak_part: int = 0

    def enter(self, part: str = "") -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)
        self.by_part[part] = self.by_part.get(part, 0) + 1
        self.peak_part = max(self.peak_part, self.by_part[part])

    def leave(self, part: str = "") -> None:
        self.now -= 1
        self.by_part[part] -= 1


@asynccontextmanager
async def oban_nodes(
    url: str,
    names: Sequence[str],
    queues: Mapping[str, Any],
    **oban_kwargs: Any,
) -> AsyncIterator[list[Oban]]:
    """Started oban instances, one per name, each with its own pool and Runtime."""
    async with AsyncExitStack() as stack:
        nodes: list[Oban] = []
        for name in names:
            pt = make_powertools(url)
            await stack.enter_async_context(pt)
            pool = AsyncConnectionPool(url, min_size=1, max_size=6, open=False)
            await stack.enter_async_context(pool)
            runtime = Runtime(pt, declarations=[], import_oban_cron=False)
            oban = Oban(
                pool=pool, node=name, queues=dict(queues), **oban_kwargs, **runtime.oban_options()
            )
            await oban.start()
            stack.push_async_callback(oban.stop)
            nodes.append(oban)
        yield nodes


async def query(
    url: str, sql: str, params: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(
        url, autocommit=True, row_factory=dict_row
    ) as conn:
        cur = await conn.execute(sql, params)  # type: ignore[arg-type]
        return list(await cur.fetchall())


async def count(url: str, sql: str, params: Mapping[str, Any] | None = None) -> int:
    return int((await query(url, sql, params))[0]["n"])


def max_in_window(starts: Sequence[datetime], period: float) -> int:
    """The most starts in any window [t, t + period), checked at every start t (a window
    holding the most starts can always be moved to begin at one of them)."""
    times = sorted(s.timestamp() for s in starts)
    best, j = 0, 0
    for i, t in enumerate(times):
        j = max(j, i)
        while j < len(times) and times[j] < t + period:
            j += 1
        best = max(best, j - i)
    return best
