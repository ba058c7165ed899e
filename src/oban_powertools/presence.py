"""Which oban nodes run the Powertools runtime, so that a node which does not is visible.

Every Oban instance given ``powertools.oban_options()`` records its node here when it
starts and every :data:`INTERVAL` seconds while it runs. All nodes of one instance name
must run the runtime: a node without it that becomes oban's leader runs oban's own cron
scheduler, which neither sees the entries stored in the database nor honours an
operator's pause, and the Powertools scheduler on the other nodes stands by. The doctor
and the overview compare oban's leader and the nodes running queues with these rows.

Only instance names with at least one recorded runtime node are judged: a host that runs
the control plane without the runtime has nothing here and nothing is reported.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from importlib import metadata
from typing import LiteralString

from .db import Conn, Database

__all__ = ["INTERVAL", "NodeWithoutRuntime", "Presence", "nodes_without_runtime"]

logger = logging.getLogger(__name__)

INTERVAL = 30.0
# A node counts as running the runtime while its row was renewed this recently.
FRESH_SECONDS = 90
# oban's leader renews its lease every 15 s, but oban-py 0.7 writes 1 s leases (see
# doctor.LEADER_RENEWAL_WINDOW_SECONDS): a lease renewed this recently counts.
LEADER_WINDOW_SECONDS = 45

RECORD: LiteralString = """
INSERT INTO powertools_runtime_nodes (name, node, version)
VALUES (%(name)s, %(node)s, %(version)s)
ON CONFLICT (name, node) DO UPDATE SET seen_at = now(), version = EXCLUDED.version
"""

# Nodes come and go (oban's default node name includes the process id): rows not renewed
# for a week are dropped when a node records itself.
PRUNE: LiteralString = """
DELETE FROM powertools_runtime_nodes WHERE seen_at < now() - interval '7 days'
"""

# oban's tables keep UTC wall time without a zone.
NODES_WITHOUT_RUNTIME: LiteralString = """
WITH seen AS (
    SELECT name, node FROM oban_leaders
    WHERE expires_at > timezone('UTC', now()) - make_interval(secs => %(leader_window)s)
    UNION
    SELECT name, node FROM oban_producers
    WHERE updated_at > timezone('UTC', now()) - make_interval(secs => %(fresh)s)
)
SELECT s.name, s.node,
       EXISTS (SELECT 1 FROM oban_leaders l
               WHERE l.name = s.name AND l.node = s.node
                 AND l.expires_at > timezone('UTC', now())
                     - make_interval(secs => %(leader_window)s)) AS leads,
       (SELECT array_agg(DISTINCT p.queue ORDER BY p.queue) FROM oban_producers p
        WHERE p.name = s.name AND p.node = s.node
          AND p.updated_at > timezone('UTC', now()) - make_interval(secs => %(fresh)s))
           AS queues
FROM seen s
WHERE EXISTS (SELECT 1 FROM powertools_runtime_nodes r WHERE r.name = s.name)
  AND NOT EXISTS (
      SELECT 1 FROM powertools_runtime_nodes r
      WHERE r.name = s.name AND r.node = s.node
        AND r.seen_at > now() - make_interval(secs => %(fresh)s))
ORDER BY leads DESC, s.name, s.node
"""


@dataclass(frozen=True, slots=True)
class NodeWithoutRuntime:
    name: str  # the oban instance name
    node: str
    leads: bool
    queues: list[str]


async def nodes_without_runtime(conn: Conn) -> list[NodeWithoutRuntime]:
    """Nodes leading or running queues for an instance name that uses the runtime, whose
    own runtime has not been seen recently (or ever): the leader first."""
    cur = await conn.execute(
        NODES_WITHOUT_RUNTIME, {"leader_window": LEADER_WINDOW_SECONDS, "fresh": FRESH_SECONDS}
    )
    return [
        NodeWithoutRuntime(r["name"], r["node"], bool(r["leads"]), list(r["queues"] or []))
        for r in await cur.fetchall()
    ]


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
                RECORD, {"name": self.name, "node": self.node, "version": _version()}
            )
            await conn.execute(PRUNE)

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
