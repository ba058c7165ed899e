"""The only code that inserts audit events.

It takes the caller's connection so the event commits or rolls back with the change it
records: no audit, no change. The table itself refuses UPDATE, DELETE and TRUNCATE. Every insert,
this module's and the one-statement confirms' (``confirm_set_paused``,
``confirm_set_limits``, inside their own statement), goes through one database function,
``powertools_write_audit_event``, with the event header :func:`event_params` builds here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from ..db import Conn
from ..db.queries import Statements
from ..errors import InvalidArgument
from ..seams import Principal

Q = Statements(audit_events="insert_event")

SURFACES = frozenset({"web", "api", "cli", "system"})
OUTCOMES = frozenset({"succeeded", "denied", "failed"})


@dataclass(frozen=True, slots=True)
class EventHeader:
    """Which event, when, what was done and to which resource: what every view of an
    event starts with."""

    id: int
    occurred_at: datetime
    action: str
    command: str
    resource_type: str
    resource_id: str


@dataclass(frozen=True, slots=True)
class AuditEvent(EventHeader):
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
    outcome, preview token and snapshots; a one-statement confirm takes these)."""
    if surface not in SURFACES:
        raise InvalidArgument(f"unknown audit surface {surface!r}")
    return {
        "audit_event": Jsonb(
            {
                "action": action,
                "command": command,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "principal_id": principal.id,
                "principal_type": principal.type,
                "principal_label": principal.label,
                "reason": reason,
                "surface": surface,
                "detail": dict(detail),
            }
        )
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
        raise InvalidArgument(f"unknown audit outcome {outcome!r}")
    if consume_preview and not preview_token:
        raise InvalidArgument("consume_preview needs the preview_token")
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
        audit_consume=consume_preview,
    )
    cur = await conn.execute(Q.insert_event, params)
    row = await cur.fetchone()
    assert row is not None
    if consume_preview and row["consumed"] != 1:
        # Raising rolls the caller's transaction back: no change without its consumption.
        raise InvalidArgument(f"preview {preview_token} was not ready to be consumed")
    return int(row["id"])
