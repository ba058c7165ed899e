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

from typing import Any

from . import chain_release
from .clock import LeaderLike
from .loop import LeaderPassLoop

__all__ = ["ChainRepair"]


class ChainRepair(LeaderPassLoop):
    """The chain repair loop of one node (acting only while it leads)."""

    label = "chain repair"
    task_name = "oban-powertools-chain-repair"

    def __init__(
        self, database: Any, *, leader: LeaderLike, node: str, prefix: str, interval: float = 5.0
    ) -> None:
        super().__init__(leader=leader, node=node, interval=interval)
        self.database = database
        self.prefix = prefix
        self.repaired = 0

    async def _pass(self) -> None:
        self.repaired += await chain_release.repair(self.database, self.prefix)
