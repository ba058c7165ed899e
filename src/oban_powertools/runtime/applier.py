"""Applying the operator's stored queue decisions to this node's oban producers.

oban keeps pause and scale in memory only: a restarted node comes back with its
configured queues, and a node that misses the NOTIFY of a pause keeps fetching. The
pipeline therefore stores every decision in ``powertools_queue_states`` (with a version)
before signalling, and this applier, running on every node, makes the local producers
match it:

* at start, before oban's stager first pokes the producers (the runtime starts the
  applier first), so a restarted node never fetches from a queue the operator paused;
* every ``interval`` seconds, and as soon as a queue signal arrives, so a lost NOTIFY is
  repaired within seconds.

A decision is applied to a producer when the producer first sees it and again whenever
its version changes; in between the applier leaves the producer alone, so a direct
``oban.pause_queue()`` by the host is not fought every few seconds (the next operator
decision on that queue overrides it). A stored decision overrides the queue's static
``paused``/``limit`` configuration. ``limit_override`` NULL means "leave the limit alone".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

from ..db import Database
from ..errors import InvalidArgument
from ..queues.state import QueueDecision, desired_states
from .loop import BackgroundLoop

__all__ = ["AppliedChange", "ProducerLike", "QueueStateApplier"]

logger = logging.getLogger(__name__)

# oban starts its producers concurrently with the stager; a second is ample for their
# oban_producers rows to exist before the applier rewrites their meta once.
REFRESH_AFTER = 1.0


class QueueInfoLike(Protocol):
    @property
    def queue(self) -> str: ...
    @property
    def paused(self) -> bool: ...
    @property
    def limit(self) -> int: ...
    @property
    def uuid(self) -> str: ...


class ProducerLike(Protocol):
    """The public surface of oban's ``Producer`` the applier uses."""

    def check(self) -> QueueInfoLike: ...
    async def pause(self) -> None: ...
    async def resume(self) -> None: ...
    async def scale(self, **kwargs: Any) -> None: ...


class NotifierLike(Protocol):
    async def listen(self, channel: str, callback: Any, wait: bool = ...) -> str: ...
    async def unlisten(self, token: str) -> None: ...


@dataclass(frozen=True, slots=True)
class AppliedChange:
    queue: str
    producer: str  # the producer's uuid
    action: str  # "pause", "resume" or "scale"
    version: int
    limit: int | None = None


class QueueStateApplier(BackgroundLoop):
    """Makes ``producers`` (oban's live dict for one instance) match stored decisions."""

    label = "queue-state applier"
    task_name = "oban-powertools-queue-state"

    def __init__(
        self,
        database: Database,
        producers: Mapping[str, ProducerLike],
        *,
        notifier: NotifierLike | None = None,
        interval: float = 5.0,
    ) -> None:
        if interval <= 0:
            raise InvalidArgument("interval must be positive")
        super().__init__()
        self.database = database
        self._producers = producers
        self._notifier = notifier
        self._interval = interval
        self._applied: dict[str, int] = {}  # producer uuid -> decision version applied
        self._wake = asyncio.Event()
        self._listen_token: str | None = None

    async def apply(self, *, refresh: bool = False) -> list[AppliedChange]:
        """Read the stored decisions and apply the ones this node has not applied yet.

        ``refresh`` also re-applies decisions already applied, but only where the
        producer still agrees with them (never undoing a host's direct call): it rewrites
        the producer's published ``oban_producers`` meta, see :meth:`start`.
        """
        producers = list(self._producers.values())
        if not producers:
            return []  # a client-mode instance runs no queues: nothing to read
        async with self.database.connection() as conn:
            decisions = await desired_states(conn)
        changes: list[AppliedChange] = []
        live: set[str] = set()
        for producer in producers:
            info = producer.check()
            live.add(info.uuid)
            decision = decisions.get(info.queue)
            if decision is None:
                continue
            if self._applied.get(info.uuid) != decision.version:
                changes.extend(await self._reconcile(producer, info, decision))
                self._applied[info.uuid] = decision.version
            elif refresh:
                await self._refresh(producer, info, decision)
        for gone in set(self._applied) - live:
            del self._applied[gone]  # stopped queues; a restarted one has a new uuid
        return changes

    async def _reconcile(
        self, producer: ProducerLike, info: QueueInfoLike, decision: QueueDecision
    ) -> list[AppliedChange]:
        changes: list[AppliedChange] = []
        # pause() flips the producer's flag before its first await, so once this returns
        # the producer fetches nothing more, whatever happens to the meta write after it.
        if decision.paused and not info.paused:
            await producer.pause()
            changes.append(AppliedChange(info.queue, info.uuid, "pause", decision.version))
        elif not decision.paused and info.paused:
            await producer.resume()
            changes.append(AppliedChange(info.queue, info.uuid, "resume", decision.version))
        limit = decision.limit_override
        if limit is not None and info.limit != limit:
            await producer.scale(limit=limit)
            changes.append(
                AppliedChange(info.queue, info.uuid, "scale", decision.version, limit=limit)
            )
        if changes:
            logger.info(
                "queue %r: applied stored decision (version %d): %s",
                info.queue,
                decision.version,
                ", ".join(c.action if c.limit is None else f"scale to {c.limit}" for c in changes),
            )
        return changes

    async def _refresh(
        self, producer: ProducerLike, info: QueueInfoLike, decision: QueueDecision
    ) -> None:
        # Each call sets what the producer already has and rewrites its meta row.
        if decision.paused == info.paused:
            await (producer.pause() if info.paused else producer.resume())
        if decision.limit_override is not None and decision.limit_override == info.limit:
            await producer.scale(limit=info.limit)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Apply the stored decisions now, then keep them applied in the background.

        The first apply can race oban's producer start writing its ``oban_producers``
        row (the in-memory state is right either way), so the first background pass at
        least a second later refreshes the row's meta as well.
        """
        await self.apply()
        if self._notifier is not None:
            self._listen_token = await self._notifier.listen("signal", self._on_signal, wait=False)
        await super().start()

    async def stop(self) -> None:
        if self._notifier is not None and self._listen_token is not None:
            await self._notifier.unlisten(self._listen_token)
            self._listen_token = None
        # Wakes the loop from its wait; the stop below sets _stopping before it can run.
        self._wake.set()
        await super().stop()

    def _describe(self) -> str:
        return self.label  # one per node already, so no node in its name

    def _on_signal(self, _channel: str, payload: Mapping[str, Any]) -> None:
        # Sync on purpose: it runs inline in the notifier and only reads the payload,
        # which oban's own handlers share and mutate.
        if "queue" in payload:
            self._wake.set()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        refresh_at: float | None = loop.time() + REFRESH_AFTER
        while not self._stopping.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                refresh = refresh_at is not None and loop.time() >= refresh_at
                await self.apply(refresh=refresh)
                if refresh:
                    refresh_at = None
            except asyncio.CancelledError:
                break
            except Exception:
                logger.warning("queue-state applier failed; retrying", exc_info=True)
