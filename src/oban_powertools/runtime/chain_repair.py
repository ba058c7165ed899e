"""The leader's periodic repair of chains whose release was missed.

A chain moves on in the transaction that acks its head link (:mod:`.chain_release`).
oban's own ``cancel_job`` and delete (and plain SQL) finish a link's job without that
hook, leaving its chain running at a head that will never be acked. Every ``interval``
seconds, on the node that is oban's leader only, :class:`ChainRepair` finishes such
heads as their job finished (:func:`.chain_release.repair`: one read through the
running chains' partial index when nothing is stuck), so the chain releases its next
link, or holds there. Each repaired link is logged and its release emits
``oban_powertools.chain.released`` with ``repaired: True``.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Any, Protocol

from . import chain_release

__all__ = ["ChainRepair"]

logger = logging.getLogger(__name__)
STOP_TIMEOUT = 5.0


class LeaderLike(Protocol):
    @property
    def is_leader(self) -> bool: ...


class ChainRepair:
    """The chain repair loop of one node (acting only while it leads)."""

    def __init__(
        self, database: Any, *, leader: LeaderLike, node: str, prefix: str, interval: float = 5.0
    ) -> None:
        self.database = database
        self._leader = leader
        self.node = node
        self.prefix = prefix
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.repaired = 0

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="oban-powertools-chain-repair")

    async def stop(self) -> None:
        # Asked to stop at its next safe point (never mid-transaction), cancelled only if
        # that takes too long.
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        with suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=STOP_TIMEOUT)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval)
            if self._stopping.is_set() or not self._leader.is_leader:
                continue
            try:
                self.repaired += await chain_release.repair(self.database, self.prefix)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("chain repair on %s failed; retrying next pass", self.node)
