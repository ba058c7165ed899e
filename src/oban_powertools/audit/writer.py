"""The only code that inserts audit events.

It takes the caller's connection so the event commits or rolls back with the change it
records: no audit, no change. The table itself refuses UPDATE, DELETE and TRUNCATE. The
pipeline's one-statement confirm writes its event with :data:`EVENT_FROM_APPLIED`, also
from here.
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
    %(audit_action)s, %(audit_command)s, %(audit_resource_type)s, %(audit_resource_id)s,
    %(audit_principal_id)s, %(audit_principal_type)s, %(audit_principal_label)s,
    %(audit_reason)s, %(audit_preview_token)s, %(audit_before)s, %(audit_after)s,
    %(audit_surface)s, %(audit_outcome)s, %(audit_detail)s
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
        %(audit_action)s, %(audit_command)s, %(audit_resource_type)s, %(audit_resource_id)s,
        %(audit_principal_id)s, %(audit_principal_type)s, %(audit_principal_label)s,
        %(audit_reason)s, %(audit_preview_token)s, %(audit_before)s, %(audit_after)s,
        %(audit_surface)s, %(audit_outcome)s, %(audit_detail)s
    )
    RETURNING id, occurred_at
),
consumed AS (
    UPDATE powertools_previews
    SET status = 'consumed', reason = %(audit_reason)s, resolved_at = clock_timestamp(),
        audit_event_id = (SELECT id FROM event)
    WHERE token = %(audit_preview_token)s AND status = 'ready'
    RETURNING token
)
SELECT event.id, event.occurred_at, (SELECT count(*) FROM consumed) AS consumed FROM event
"""

# The audit half of the pipeline's one-statement confirm (see Pipeline.execute): it follows
# the pipeline's ``guard`` CTE (the preview, locked: ready, unexpired, the actor's) and the
# action's CTEs, which end with ``applied(before jsonb, after jsonb)``, one row when the
# change was made. The event is written from that row and the preview consumed by it, so
# the change, its event and the consumption commit together or not at all, as one
# statement needs no BEGIN or COMMIT. Parameters are prefixed ``audit_``.
EVENT_FROM_APPLIED: LiteralString = """,
event AS (
    INSERT INTO powertools_audit_events (
        action, command, resource_type, resource_id, principal_id, principal_type,
        principal_label, reason, preview_token, before, after, surface, outcome, detail
    )
    SELECT %(audit_action)s, %(audit_command)s, %(audit_resource_type)s,
           %(audit_resource_id)s, %(audit_principal_id)s, %(audit_principal_type)s,
           %(audit_principal_label)s, %(audit_reason)s, guard.token, applied.before,
           applied.after, %(audit_surface)s, 'succeeded', %(audit_detail)s
    FROM applied, guard
    RETURNING id, preview_token
),
consumed AS (
    UPDATE powertools_previews p
    SET status = 'consumed', reason = %(audit_reason)s, resolved_at = clock_timestamp(),
        audit_event_id = event.id
    FROM event
    WHERE p.token = event.preview_token
    RETURNING p.token
)
SELECT (SELECT count(*) FROM guard) AS guarded, event.id AS event_id,
       applied.before, applied.after, (SELECT count(*) FROM consumed) AS consumed
FROM (SELECT) AS one
LEFT JOIN event ON true
LEFT JOIN applied ON true
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


def event_params(
    *,
    action: str,
    command: str,
    resource_type: str,
    resource_id: str,
    principal: Principal,
    surface: str,
    reason: str | None,
    detail: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``audit_`` parameters every event insert takes (:func:`write_event` adds the
    outcome, preview token and snapshots; :data:`EVENT_FROM_APPLIED` takes these)."""
    if surface not in SURFACES:
        raise ValueError(f"unknown audit surface {surface!r}")
    return {
        "audit_action": action,
        "audit_command": command,
        "audit_resource_type": resource_type,
        "audit_resource_id": resource_id,
        "audit_principal_id": principal.id,
        "audit_principal_type": principal.type,
        "audit_principal_label": principal.label,
        "audit_reason": reason,
        "audit_surface": surface,
        "audit_detail": Jsonb(dict(detail)),
    }


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
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown audit outcome {outcome!r}")
    if consume_preview and not preview_token:
        raise ValueError("consume_preview needs the preview_token")
    params = event_params(
        action=action,
        command=command,
        resource_type=resource_type,
        resource_id=resource_id,
        principal=principal,
        surface=surface,
        reason=reason,
        detail=detail or {},
    )
    params.update(
        audit_preview_token=preview_token,
        audit_before=None if before is None else Jsonb(before),
        audit_after=None if after is None else Jsonb(after),
        audit_outcome=outcome,
    )
    cur = await conn.execute(
        INSERT_EVENT_CONSUMING_PREVIEW if consume_preview else INSERT_EVENT, params
    )
    row = await cur.fetchone()
    assert row is not None
    if consume_preview and row["consumed"] != 1:
        # Raising rolls the caller's transaction back: no change without its consumption.
        raise RuntimeError(f"preview {preview_token} was not ready to be consumed")
    return int(row["id"])
