"""The only code that inserts audit events.

It takes the caller's connection so the event commits or rolls back with the change it
records: no audit, no change. The table itself refuses UPDATE, DELETE and TRUNCATE.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString

from psycopg.types.json import Jsonb

from ..db import Conn
from ..seams import Principal

INSERT_EVENT: LiteralString = """
INSERT INTO powertools_audit_events (
    action, command, resource_type, resource_id, principal_id, principal_type,
    principal_label, reason, preview_token, before, after, surface, outcome, detail
) VALUES (
    %(action)s, %(command)s, %(resource_type)s, %(resource_id)s, %(principal_id)s,
    %(principal_type)s, %(principal_label)s, %(reason)s, %(preview_token)s, %(before)s,
    %(after)s, %(surface)s, %(outcome)s, %(detail)s
)
RETURNING id, occurred_at
"""

# The event of a confirmed action and the consumption of its preview, in one statement:
# one round trip less on every confirm, and the two can never be written apart.
INSERT_EVENT_CONSUMING_PREVIEW: LiteralString = """
WITH event AS (
    INSERT INTO powertools_audit_events (
        action, command, resource_type, resource_id, principal_id, principal_type,
        principal_label, reason, preview_token, before, after, surface, outcome, detail
    ) VALUES (
        %(action)s, %(command)s, %(resource_type)s, %(resource_id)s, %(principal_id)s,
        %(principal_type)s, %(principal_label)s, %(reason)s, %(preview_token)s, %(before)s,
        %(after)s, %(surface)s, %(outcome)s, %(detail)s
    )
    RETURNING id, occurred_at
),
consumed AS (
    UPDATE powertools_previews
    SET status = 'consumed', reason = %(reason)s, resolved_at = clock_timestamp(),
        audit_event_id = (SELECT id FROM event)
    WHERE token = %(preview_token)s AND status = 'ready'
    RETURNING token
)
SELECT event.id, event.occurred_at, (SELECT count(*) FROM consumed) AS consumed FROM event
"""

SURFACES = frozenset({"web", "api", "cli", "system"})
OUTCOMES = frozenset({"succeeded", "denied", "failed"})


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    occurred_at: datetime
    action: str
    command: str
    resource_type: str
    resource_id: str
    principal_id: str
    principal_type: str
    principal_label: str
    reason: str | None
    preview_token: str | None
    before: Any
    after: Any
    surface: str
    outcome: str
    detail: Mapping[str, Any]


async def write_event(
    conn: Conn,
    *,
    action: str,
    command: str,
    resource_type: str,
    resource_id: str,
    principal: Principal,
    surface: str,
    outcome: str,
    reason: str | None = None,
    preview_token: str | None = None,
    before: Any = None,
    after: Any = None,
    detail: Mapping[str, Any] | None = None,
    consume_preview: bool = False,
) -> int:
    """Insert one event; with ``consume_preview`` also mark ``preview_token``'s preview
    consumed by it (the caller holds that preview's row lock, so it must still be ready)."""
    if surface not in SURFACES:
        raise ValueError(f"unknown audit surface {surface!r}")
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown audit outcome {outcome!r}")
    if consume_preview and not preview_token:
        raise ValueError("consume_preview needs the preview_token")
    cur = await conn.execute(
        INSERT_EVENT_CONSUMING_PREVIEW if consume_preview else INSERT_EVENT,
        {
            "action": action,
            "command": command,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "principal_id": principal.id,
            "principal_type": principal.type,
            "principal_label": principal.label,
            "reason": reason,
            "preview_token": preview_token,
            "before": None if before is None else Jsonb(before),
            "after": None if after is None else Jsonb(after),
            "surface": surface,
            "outcome": outcome,
            "detail": Jsonb(dict(detail or {})),
        },
    )
    row = await cur.fetchone()
    assert row is not None
    if consume_preview and row["consumed"] != 1:
        # Raising rolls the caller's transaction back: no change without its consumption.
        raise RuntimeError(f"preview {preview_token} was not ready to be consumed")
    return int(row["id"])
