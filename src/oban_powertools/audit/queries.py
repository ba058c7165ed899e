"""Reading the audit log: filtered keyset pages (newest first), one event, a subject's trail.

Filters are bound parameters of constant statements; an unset filter is NULL and matches
everything. Bulk events (``resource_id = "bulk:N"``) list their targets in
``detail.targets``, so a job's trail includes the bulk actions that touched it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from ..db import Conn
from ..db.queries import Statements
from .writer import AuditEvent

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

# Both lists run unprepared (``prepare=False``): each filter is a bound parameter that
# may be NULL, and only a one-off plan sees which are set and picks that filter's index.
Q = Statements(
    audit_events="list_events list_subject_events get_event recent_subjects distinct_actions",
)


@dataclass(frozen=True, slots=True)
class AuditFilters:
    resource_type: str | None = None
    resource_id: str | None = None
    action: str | None = None
    actor: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def params(self) -> dict[str, Any]:
        # Each field is the statement's parameter of the same name.
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AuditPage:
    events: list[AuditEvent]
    next_before: int | None  # pass as ``before`` for the next (older) page


@dataclass(frozen=True, slots=True)
class AuditSubject:
    resource_type: str
    resource_id: str
    last_at: datetime
    events: int


def event_from_row(row: Mapping[str, Any]) -> AuditEvent:
    return AuditEvent(
        id=int(row["id"]),
        occurred_at=row["occurred_at"],
        action=row["action"],
        command=row["command"],
        resource_type=row["resource_type"],
        resource_id=row["resource_id"],
        principal_id=row["principal_id"],
        principal_type=row["principal_type"],
        principal_label=row["principal_label"],
        reason=row["reason"],
        preview_token=row["preview_token"],
        before=row["before"],
        after=row["after"],
        surface=row["surface"],
        outcome=row["outcome"],
        detail=row["detail"] or {},
    )


async def list_events(
    conn: Conn,
    filters: AuditFilters | None = None,
    *,
    before: int | None = None,
    limit: int = PAGE_SIZE,
) -> AuditPage:
    """One page of events, newest first; ``before`` is the keyset cursor (an event id)."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    filters = filters or AuditFilters()
    params = filters.params() | {"before": before, "limit": limit + 1}
    statement = Q.list_subject_events if filters.resource_id is not None else Q.list_events
    cur = await conn.execute(statement, params, prepare=False)
    rows = await cur.fetchall()
    events = [event_from_row(r) for r in rows[:limit]]
    next_before = events[-1].id if len(rows) > limit and events else None
    return AuditPage(events, next_before)


async def get_event(conn: Conn, event_id: int) -> AuditEvent | None:
    cur = await conn.execute(Q.get_event, {"id": event_id})
    row = await cur.fetchone()
    return event_from_row(row) if row else None


async def events_for(
    conn: Conn,
    resource_type: str,
    resource_id: str,
    *,
    since: datetime | None = None,
    limit: int = 100,
) -> AuditPage:
    """A subject's trail (including bulk events that named it), newest first."""
    filters = AuditFilters(resource_type=resource_type, resource_id=resource_id, since=since)
    return await list_events(conn, filters, limit=limit)


async def recent_subjects(conn: Conn, *, limit: int = 20, scan: int = 2000) -> list[AuditSubject]:
    cur = await conn.execute(Q.recent_subjects, {"limit": limit, "scan": scan})
    return [
        AuditSubject(r["resource_type"], r["resource_id"], r["last_at"], r["events"])
        for r in await cur.fetchall()
    ]


async def recent_actions(conn: Conn) -> list[str]:
    """Event names seen recently, for the filter's choices."""
    cur = await conn.execute(Q.distinct_actions)
    return [r["action"] for r in await cur.fetchall()]
