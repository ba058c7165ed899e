"""The operator's desired queue state, stored so a restarted node comes back with it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..db import Conn
from ..db.queries import sql

# What a queue name may be in an action's target (oban's names, without spaces or quotes).
QUEUE_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,255}$")

QUEUE_SNAPSHOT = sql("queue_states", "queue_snapshot")
KNOWN_QUEUES = sql("queue_states", "known_queues")
SET_PAUSED = sql("queue_states", "set_paused")
SET_LIMIT = sql("queue_states", "set_limit")
DESIRED_STATES = sql("queue_states", "desired_states")


@dataclass(frozen=True, slots=True)
class QueueDecision:
    queue: str
    paused: bool
    limit_override: int | None
    version: int


async def snapshot_queues(conn: Conn, queues: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Queues that some node runs, or that have a stored decision."""
    cur = await conn.execute(KNOWN_QUEUES, {"queues": list(queues)})
    known = [r["queue"] for r in await cur.fetchall()]
    if not known:
        return {}
    cur = await conn.execute(QUEUE_SNAPSHOT, {"queues": known})
    return {row["queue"]: dict(row) for row in await cur.fetchall()}


async def desired_states(conn: Conn) -> dict[str, QueueDecision]:
    cur = await conn.execute(DESIRED_STATES)
    return {
        r["queue"]: QueueDecision(r["queue"], r["paused"], r["limit_override"], r["version"])
        for r in await cur.fetchall()
    }
