"""The loopers oban starts and stops in place of its own: its scheduler, its stager and
its metrics looper, each holding the runtime's pool open while its parts run.

:class:`~.instance.Runtime` builds them when oban builds its components (:mod:`.hooks`);
they know the runtime only as :class:`PoolHolder`, what a looper asks of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any, Protocol

from ..db import Database
from ..db.queries import Statements
from . import hooks
from .applier import QueueStateApplier
from .limiter import Limiter
from .presence import Presence
from .scheduler import CronScheduler

__all__ = ["LeaderLoop", "MetricsService", "PoolHolder", "SchedulerService", "StagerService"]


class PoolHolder(Protocol):
    """What a looper asks of the runtime: its pool, held open by a count of users, and the
    sync of the code's cron declarations into the database."""

    @property
    def database(self) -> Database: ...
    async def acquire(self) -> None: ...
    async def release(self) -> None: ...
    async def sync_declarations(self) -> object: ...


class _Service:
    """A looper oban starts and stops in place of one of its own: it holds the runtime's
    pool open from before its parts start until after they stopped."""

    def __init__(self, runtime: PoolHolder) -> None:
        self.runtime = runtime
        self._started = False

    async def _start_parts(self) -> None:
        raise NotImplementedError

    async def _stop_parts(self) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        await self.runtime.acquire()
        try:
            await self._start_parts()
        except BaseException:
            await self.runtime.release()
            raise
        self._started = True

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        try:
            await self._stop_parts()
        finally:
            await self.runtime.release()


class LeaderLoop(Protocol):
    """A loop :class:`SchedulerService` starts and stops beside the scheduler."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class SchedulerService(_Service):
    """The looper oban starts and stops in place of its scheduler. It also records that
    this node runs the runtime (:mod:`.presence`), and runs the loops that act only on the
    leader oban gives the scheduler (the workflow and chain repairs, the job rollup): each asks that
    leader itself, so every node starts them and only the leader's do anything."""

    def __init__(
        self,
        runtime: PoolHolder,
        scheduler: CronScheduler,
        presence: Presence,
        leader_loops: Sequence[LeaderLoop],
    ) -> None:
        super().__init__(runtime)
        self.scheduler = scheduler
        self.presence = presence
        self.leader_loops = tuple(leader_loops)

    async def _start_parts(self) -> None:
        await self.presence.start()
        try:
            await self.runtime.sync_declarations()
            await self.scheduler.start()
            for loop in self.leader_loops:
                await loop.start()
        except BaseException:
            await self._stop_parts()
            raise

    async def _stop_parts(self) -> None:
        # Every part is stopped even if one fails (a stop of a part that never started
        # returns at once): the leader's loops first, the scheduler last.
        async with AsyncExitStack() as stack:
            stack.push_async_callback(self.scheduler.stop)
            stack.push_async_callback(self.presence.stop)
            for loop in self.leader_loops:
                stack.push_async_callback(loop.stop)


class StagerService(_Service):
    """oban's stager, the queue-state applier and the limiter as one looper.

    The limiter starts first (the queues' declared limits are stored, and the fetch hook
    sees them, before any producer fetches), then the applier: its initial apply
    pauses/scales the producers before the stager's first pass can wake them to fetch.
    """

    def __init__(
        self,
        runtime: PoolHolder,
        stager: Any,
        applier: QueueStateApplier,
        limiter: Limiter,
        producers: Mapping[str, Any],
    ) -> None:
        super().__init__(runtime)
        self.stager = stager
        self.applier = applier
        self.limiter = limiter
        self.producers = producers

    async def _start_parts(self) -> None:
        hooks.attach_fetcher(self.producers, self.limiter)  # again, after a stop
        try:
            await self.limiter.start()
            await self.applier.start()
            try:
                await self.stager.start()
            except BaseException:
                await self.applier.stop()
                raise
        except BaseException:
            hooks.detach_fetcher(self.producers)
            await self.limiter.stop()
            raise

    async def _stop_parts(self) -> None:
        try:
            await self.stager.stop()
        finally:
            try:
                await self.applier.stop()
            finally:
                hooks.detach_fetcher(self.producers)
                await self.limiter.stop()


# What Oban Web's cron view is told about each entry: oban's cronitor format, [expression,
# worker, options], with the entry's name (oban names code entries by a hash; stored
# entries have names of their own) and whether an operator paused it.
Q = Statements(cron_entries="crontab")


class MetricsService(_Service):
    """oban's metrics looper, broadcasting the stored cron entries in its crontab.

    oban's ``Metrics`` broadcasts the ``@worker(cron=...)`` registry every
    ``cronitor_interval`` seconds through ``_broadcast_crontab``; the runtime schedules the
    stored entries instead (code ones included), so that method is replaced on this
    instance, and the runtime's pool is held open while the looper runs.
    """

    def __init__(self, runtime: PoolHolder, metrics: Any, *, notifier: Any, name: str, node: str):
        super().__init__(runtime)
        self.metrics = metrics
        self._notifier = notifier
        self._name = name
        self._node = node
        metrics._broadcast_crontab = self.broadcast_crontab

    async def crontab(self) -> list[list[Any]]:
        async with self.runtime.database.connection() as conn:
            cur = await conn.execute(Q.crontab)
            rows = await cur.fetchall()
        return [
            [
                r["expression"],
                r["worker"],
                {"name": r["name"], "timezone": r["timezone"], "paused": r["paused"]},
            ]
            for r in rows
        ]

    async def broadcast_crontab(self) -> None:
        crontab = await self.crontab()
        if not crontab:
            return  # as oban: nothing to announce
        await self._notifier.notify(
            "cronitor", {"crontab": crontab, "name": self._name, "node": self._node}
        )

    async def _start_parts(self) -> None:
        await self.metrics.start()

    async def _stop_parts(self) -> None:
        await self.metrics.stop()
