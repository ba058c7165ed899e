"""Which oban nodes run the Powertools runtime, so that a node which does not is visible.

Every Oban instance given ``powertools.oban_options()`` records its node here when it
starts and every :data:`INTERVAL` seconds while it runs. All nodes of one instance name
must run the runtime: a node without it that becomes oban's leader runs oban's own cron
scheduler, which neither sees the entries stored in the database nor honours an
operator's pause, and the Powertools scheduler on the other nodes stands by. The doctor
and the overview compare oban's leader and the nodes running queues with these rows.

A node counts as running while oban's own heartbeat for it is recent: its producers'
refresh or its leader lease, both renewed every 15 s, within :data:`LIVE_SECONDS`. A node
oban still has rows for but no recent heartbeat has *stopped* (a process killed, or not
yet cleaned up after a restart): it is reported as stopped, never as running without the
runtime, so a restarted worker is not blamed on the node it replaced.

Nodes without the runtime are judged per instance name: a name with a recorded runtime
node must have it on every running node. When no running node runs the runtime at all,
that is reported too (:attr:`RuntimeStatus.runtime_running`): nothing then schedules the
stored cron entries, and code entries are not even stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from importlib import metadata

from ..db import Conn, Database
from ..db.queries import Statements

__all__ = [
    "INTERVAL",
    "LIVE_SECONDS",
    "NodeWithoutRuntime",
    "ObanNode",
    "Presence",
    "RuntimeStatus",
    "nodes_without_runtime",
    "runtime_status",
]

logger = logging.getLogger(__name__)

INTERVAL = 30.0
# A runtime node counts as recorded while its row was renewed this recently.
FRESH_SECONDS = 90
# oban renews a producer's row (refresher) and the leader's lease every 15 s; two missed
# beats and a margin make a node stopped. It must stay below FRESH_SECONDS - INTERVAL: a
# killed runtime node then turns "stopped" before its own record turns stale, and is never
# reported as running without the runtime. (oban-py 0.7 writes leases of a few seconds,
# so a lease's expiry is as good as its renewal time here.)
LIVE_SECONDS = 40
MAX_NODES = 500

Q = Statements(runtime_nodes="record_node prune_nodes oban_nodes")


@dataclass(frozen=True, slots=True)
class ObanNode:
    """One node oban has rows for, live or stopped."""

    name: str  # the oban instance name
    node: str
    queues: list[str]
    seen_seconds_ago: int  # the latest heartbeat: a producer refresh or the leader lease
    leads: bool  # holds a lease renewed within LIVE_SECONDS
    runtime: bool  # its Powertools runtime recorded itself within FRESH_SECONDS
    name_uses_runtime: bool  # some node of this instance name ever recorded the runtime

    @property
    def running(self) -> bool:
        return self.seen_seconds_ago <= LIVE_SECONDS


@dataclass(frozen=True, slots=True)
class NodeWithoutRuntime:
    name: str  # the oban instance name
    node: str
    leads: bool
    queues: list[str]
    seen_seconds_ago: int = 0


@dataclass(frozen=True, slots=True)
class RuntimeStatus:
    nodes: list[ObanNode]

    @property
    def running(self) -> list[ObanNode]:
        return [n for n in self.nodes if n.running]

    @property
    def stopped(self) -> list[ObanNode]:
        """Nodes oban still has rows for whose heartbeat lapsed: stopped, not failing."""
        return [n for n in self.nodes if not n.running]

    @property
    def leaders(self) -> list[ObanNode]:
        return [n for n in self.running if n.leads]

    @property
    def runtime_running(self) -> bool:
        """Whether some running node runs the runtime (and so can schedule cron)."""
        return any(n.runtime for n in self.running)

    @property
    def without_runtime(self) -> list[NodeWithoutRuntime]:
        """Running nodes, of instance names that use the runtime, that run without it:
        the leader first."""
        found = [
            NodeWithoutRuntime(n.name, n.node, n.leads, n.queues, n.seen_seconds_ago)
            for n in self.running
            if n.name_uses_runtime and not n.runtime
        ]
        return sorted(found, key=lambda n: (not n.leads, n.name, n.node))


def _age(*ages: int | None) -> int:
    known = [a for a in ages if a is not None]
    return min(known) if known else 1 << 30


async def runtime_status(conn: Conn) -> RuntimeStatus:
    """Every node oban has rows for (bounded), whether it runs and whether it runs the
    runtime."""
    cur = await conn.execute(Q.oban_nodes, {"fresh": FRESH_SECONDS, "limit": MAX_NODES})
    nodes = []
    for r in await cur.fetchall():
        lease_age = r["lease_age"]
        nodes.append(
            ObanNode(
                name=r["name"],
                node=r["node"],
                queues=list(r["queues"] or []),
                seen_seconds_ago=max(0, _age(r["refresh_age"], lease_age)),
                leads=lease_age is not None and lease_age <= LIVE_SECONDS,
                runtime=bool(r["runtime"]),
                name_uses_runtime=bool(r["name_uses_runtime"]),
            )
        )
    return RuntimeStatus(nodes)


async def nodes_without_runtime(conn: Conn) -> list[NodeWithoutRuntime]:
    """Running nodes leading or running queues for an instance name that uses the runtime,
    whose own runtime has not been seen recently (or ever): the leader first."""
    return (await runtime_status(conn)).without_runtime


def _version() -> str:
    try:
        return metadata.version("oban-powertools")
    except metadata.PackageNotFoundError:
        return "unknown"


class Presence:
    """Records one runtime node while its oban instance runs."""

    def __init__(
        self, database: Callable[[], Database], *, name: str, node: str, interval: float = INTERVAL
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._database = database  # the runtime's current pool (it is replaced on restart)
        self.name = name
        self.node = node
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def record(self) -> None:
        async with self._database().connection() as conn:
            await conn.execute(
                Q.record_node, {"name": self.name, "node": self.node, "version": _version()}
            )
            await conn.execute(Q.prune_nodes)

    async def start(self) -> None:
        """Record the node now (a failure is logged: presence must not stop oban), then
        renew the record in the background."""
        try:
            await self.record()
        except Exception:
            logger.warning("could not record this node's Powertools runtime", exc_info=True)
        self._task = asyncio.create_task(self._loop(), name="oban-powertools-presence")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.record()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("could not renew this node's Powertools runtime", exc_info=True)
