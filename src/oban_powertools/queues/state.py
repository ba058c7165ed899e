"""The operator's desired queue state, stored so a restarted node comes back with it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

from ..db import Conn

QUEUE_SNAPSHOT: LiteralString = """
SELECT q.name AS queue,
       coalesce(s.paused, false) AS paused,
       s.limit_override,
       coalesce(s.version, 0) AS version,
       s.changed_by_label,
       s.reason,
       (SELECT count(*) FROM oban_producers p WHERE p.queue = q.name) AS producers,
       (SELECT max((p.meta->>'local_limit')::int) FROM oban_producers p
         WHERE p.queue = q.name) AS configured_limit
FROM unnest(%(queues)s::text[]) AS q(name)
LEFT JOIN powertools_queue_states s ON s.queue = q.name
"""

KNOWN_QUEUES: LiteralString = """
SELECT DISTINCT queue FROM (
    SELECT queue FROM oban_producers
    UNION ALL SELECT queue FROM powertools_queue_states
) known WHERE queue = ANY(%(queues)s)
"""

SET_PAUSED: LiteralString = """
INSERT INTO powertools_queue_states (queue, paused, changed_by_id, changed_by_label, reason)
VALUES (%(queue)s, %(paused)s, %(by_id)s, %(by_label)s, %(reason)s)
ON CONFLICT (queue) DO UPDATE SET
    paused = EXCLUDED.paused, changed_by_id = EXCLUDED.changed_by_id,
    changed_by_label = EXCLUDED.changed_by_label, reason = EXCLUDED.reason,
    version = powertools_queue_states.version + 1, updated_at = clock_timestamp()
"""

SET_LIMIT: LiteralString = """
INSERT INTO powertools_queue_states (queue, limit_override, changed_by_id, changed_by_label,
                                     reason)
VALUES (%(queue)s, %(limit)s, %(by_id)s, %(by_label)s, %(reason)s)
ON CONFLICT (queue) DO UPDATE SET
    limit_override = EXCLUDED.limit_override, changed_by_id = EXCLUDED.changed_by_id,
    changed_by_label = EXCLUDED.changed_by_label, reason = EXCLUDED.reason,
    version = powertools_queue_states.version + 1, updated_at = clock_timestamp()
"""

DESIRED_STATES: LiteralString = """
SELECT queue, paused, limit_override, version FROM powertools_queue_states
"""


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
