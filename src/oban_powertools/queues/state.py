"""The operator's desired queue state, stored so a restarted node comes back with it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..db import Conn
from ..db.queries import Statements

# What a queue name may be in an action's target (oban's names, without spaces or quotes).
QUEUE_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,255}$")

Q = Statements(queue_states="queue_snapshot known_queues set_paused set_limit desired_states")


@dataclass(frozen=True, slots=True)
class QueueDecision:
    queue: str
    paused: bool
    limit_override: int | None
    version: int


async def snapshot_queues(conn: Conn, queues: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Queues that some node runs, or that have a stored decision."""
    cur = await conn.execute(Q.known_queues, {"queues": list(queues)})
    known = [r["queue"] for r in await cur.fetchall()]
    if not known:
        return {}
    cur = await conn.execute(Q.queue_snapshot, {"queues": known})
    return {row["queue"]: dict(row) for row in await cur.fetchall()}


async def desired_states(conn: Conn) -> dict[str, QueueDecision]:
    cur = await conn.execute(Q.desired_states)
    return {
        r["queue"]: QueueDecision(r["queue"], r["paused"], r["limit_override"], r["version"])
        for r in await cur.fetchall()
    }
