"""The audit page and the action result page: events with every value through the policy."""

from __future__ import annotations

from dataclasses import dataclass

from ..audit import queries
from ..audit.queries import AuditFilters
from ..audit.writer import AuditEvent, EventHeader
from ..db import Database
from ..display import Display
from ..seams import Resource
from .principal import ShownPrincipal


@dataclass(frozen=True, slots=True)
class AuditRow(EventHeader):
    resource: str
    actor_id: str
    actor_label: str
    actor_type: str
    reason: str | None
    surface: str
    outcome: str
    token_hint: str | None
    effect: str | None
    before_json: str | None
    after_json: str | None
    detail_json: str
    targets: list[str]

    @property
    def actor(self) -> ShownPrincipal:
        """Who acted, id beside label (both already through the display policy)."""
        return ShownPrincipal(self.actor_id, self.actor_label, self.actor_type)


@dataclass(frozen=True, slots=True)
class AuditView:
    rows: list[AuditRow]
    next_before: int | None
    actions: list[str]


def audit_row(display: Display, event: AuditEvent, *, full: bool = True) -> AuditRow:
    """An event as pages show it. Lists pass ``full=False``: they show no snapshots, detail
    or targets, and walking a bulk event's 100k targets through the display policy for a
    table row would make every list as slow as its largest event."""
    resource = Resource(event.resource_type, event.resource_id)
    detail = dict(event.detail)
    effect = detail.pop("effect", None)
    targets = [str(t) for t in detail.get("targets", [])] if full else []

    def snapshot(value: object) -> str | None:
        if value is None or not full:
            return None
        return display.json("snapshot", value, resource=resource)[0]

    return AuditRow(
        id=event.id,
        occurred_at=event.occurred_at,
        action=event.action,
        command=event.command,
        resource_type=event.resource_type,
        resource_id=event.resource_id,
        resource=str(resource),
        actor_id=display.text("principal", event.principal_id, field="principal_id"),
        actor_label=display.text("principal", event.principal_label, field="principal_label"),
        actor_type=event.principal_type,
        reason=display.optional("reason", event.reason, resource=resource, field="reason"),
        surface=event.surface,
        outcome=event.outcome,
        # The token is spent, but a prefix is enough to correlate with the preview.
        token_hint=event.preview_token[:8] + "…" if event.preview_token else None,
        effect=display.optional("effect", effect, resource=resource, field="effect"),
        before_json=snapshot(event.before),
        after_json=snapshot(event.after),
        detail_json=display.json("detail", detail, resource=resource)[0] if full else "",
        targets=[display.text("target", t, resource=resource, field="target") for t in targets],
    )


async def audit_view(
    db: Database,
    display: Display,
    filters: AuditFilters,
    *,
    before: int | None = None,
    limit: int = queries.PAGE_SIZE,
) -> AuditView:
    async with db.connection() as conn:
        page = await queries.list_events(conn, filters, before=before, limit=limit)
        actions = await queries.recent_actions(conn)
    rows = [audit_row(display, e, full=False) for e in page.events]
    return AuditView(rows, page.next_before, actions)


async def audit_event(db: Database, display: Display, event_id: int) -> AuditRow | None:
    async with db.connection() as conn:
        event = await queries.get_event(conn, event_id)
    return audit_row(display, event) if event else None


async def recent_events(db: Database, display: Display, *, limit: int = 10) -> list[AuditRow]:
    async with db.connection() as conn:
        page = await queries.list_events(conn, limit=limit)
    return [audit_row(display, e, full=False) for e in page.events]
