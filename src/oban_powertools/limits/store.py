"""The stored limits of each queue (``powertools_queue_limits``).

Each node writes what its code declares for the queues it runs when it starts
(:func:`declare`); an operator's ``set_queue_limits`` decision replaces the numbers and
keeps them across restarts and deploys until the next decision. The partition always
follows the code. The limited fetch reads this table on every fetch, so a decision takes
effect at every node's next fetch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from ..db import Conn
from ..db.queries import Statements
from .options import GlobalLimit, Partition, QueueLimits, RateLimit

__all__ = ["Declared", "StoredLimits", "declare", "load_stored", "stored_from_row"]

logger = logging.getLogger(__name__)

Q = Statements(queue_limits="stored_limits stored_limit lock_declaration declare_limits")


@dataclass(frozen=True, slots=True)
class StoredLimits:
    """A queue's limits as the fetch enforces them, and where they came from."""

    queue: str
    limits: QueueLimits
    declared: dict[str, Any]
    declared_by: str | None
    declared_at: datetime | None
    decided_by_id: str | None
    decided_by_label: str | None
    reason: str | None
    decided_at: datetime | None
    version: int

    @property
    def decided(self) -> bool:
        """Whether the numbers are an operator's decision rather than the code's."""
        return self.decided_at is not None


def stored_from_row(row: dict[str, Any]) -> StoredLimits:
    fields = row["partition_fields"]
    partition = None if fields is None else Partition(tuple(fields), tuple(row["partition_keys"]))
    global_limit = (
        None
        if row["global_limit"] is None
        else GlobalLimit(row["global_limit"], partition if row["global_partitioned"] else None)
    )
    rate_limit = (
        None
        if row["rate_allowed"] is None
        else RateLimit(
            row["rate_allowed"], row["rate_period"], partition if row["rate_partitioned"] else None
        )
    )
    return StoredLimits(
        queue=row["queue"],
        limits=QueueLimits(global_limit, rate_limit),
        declared=row["declared"] or {},
        declared_by=row["declared_by"],
        declared_at=row["declared_at"],
        decided_by_id=row["decided_by_id"],
        decided_by_label=row["decided_by_label"],
        reason=row["reason"],
        decided_at=row["decided_at"],
        version=row["version"],
    )


async def load_stored(conn: Conn) -> dict[str, StoredLimits]:
    cur = await conn.execute(Q.stored_limits)
    return {r["queue"]: stored_from_row(r) for r in await cur.fetchall()}


@dataclass(frozen=True, slots=True)
class Declared:
    queue: str
    written: bool  # False: the stored declaration was already this one
    partition_changed: bool  # the queue's jobs must be re-keyed
    partition: Partition | None
    txid: int | None  # the declaring transaction, for waiting out older inserts


async def declare(conn: Conn, queue: str, limits: QueueLimits, *, node: str) -> Declared:
    """Store one queue's declared limits (in ``conn``'s transaction, which the caller
    commits). Nothing is written when the stored declaration is the same."""
    options = limits.as_options()
    await conn.execute(Q.lock_declaration, {"queue": queue})
    cur = await conn.execute(Q.stored_limit, {"queue": queue})
    row = await cur.fetchone()
    partition = limits.partition
    if row is not None:
        stored = stored_from_row(row)
        same_partition = stored.limits.partition == partition
        if stored.declared == options and same_partition:
            return Declared(queue, False, False, partition, None)
        if stored.declared and stored.declared != options:
            logger.warning(
                "queue %s: node %s declares limits %s; the stored declaration (from node %s) "
                "was %s. The last node to start wins.",
                queue,
                node,
                options,
                stored.declared_by,
                stored.declared,
            )
    else:
        if limits.empty:
            return Declared(queue, False, False, None, None)
        same_partition = partition is None
    g, r = limits.global_limit, limits.rate_limit
    cur = await conn.execute(
        Q.declare_limits,
        {
            "queue": queue,
            "global_limit": g.allowed if g else None,
            "global_partitioned": bool(g and g.partition),
            "rate_allowed": r.allowed if r else None,
            "rate_period": r.period if r else None,
            "rate_partitioned": bool(r and r.partition),
            "partition_fields": list(partition.fields) if partition else None,
            "partition_keys": list(partition.keys) if partition else [],
            "declared": Jsonb(options),
            "node": node,
        },
    )
    written = await cur.fetchone()
    assert written is not None
    return Declared(queue, True, not same_partition, partition, int(written["txid"]))
