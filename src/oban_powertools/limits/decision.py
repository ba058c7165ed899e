"""An operator's decision on a queue's limits (``set_queue_limits``): what the action
snapshots of a queue, and the one statement that confirms it.

The decision is stored on the queue's row in ``powertools_queue_limits`` (see
:mod:`.store`): ``decided_by_id``/``_label``, ``reason`` and ``decided_at`` while the
operator's numbers apply, cleared when the queue returns to its code's declaration.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..db import Conn
from ..db.queries import Statements

__all__ = ["Q", "limits_snapshot"]

Q = Statements(queue_limits="limits_snapshot confirm_set_limits")


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    # A snapshot is stored as JSON on the preview: times as ISO text.
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


async def limits_snapshot(conn: Conn, queues: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each known queue's stored limits (version 0 without a row yet) and running jobs."""
    cur = await conn.execute(Q.limits_snapshot, {"queues": list(queues)})
    return {row["queue"]: _jsonable(dict(row)) for row in await cur.fetchall()}
