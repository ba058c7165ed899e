"""``/audit``: the cross-surface audit destination, and one event in full."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...audit.queries import AuditFilters
from ...read_models import audit as audit_model
from ...seams import Resource
from ..access import plane_of, require
from ..pages import not_found, page
from ..params import positive_id
from ..templating import is_poll

FILTER_FIELDS = ("resource_type", "resource_id", "action", "actor", "outcome", "since", "until")
OUTCOMES = ("succeeded", "denied", "failed")


class BadFilter(ValueError):
    pass


def _time(raw: str | None, name: str) -> datetime | None:
    """A datetime-local value or ISO timestamp; without an offset it is read as UTC."""
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise BadFilter(f"{name} must be a date and time like 2025-01-31T14:00") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def parse_filters(query: Mapping[str, str]) -> AuditFilters:
    def text(name: str) -> str | None:
        value = (query.get(name) or "").strip()
        if len(value) > 255:
            raise BadFilter(f"the {name} filter is too long")
        return value or None

    outcome = text("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise BadFilter(f"outcome must be one of {', '.join(OUTCOMES)}")
    return AuditFilters(
        resource_type=text("resource_type"),
        resource_id=text("resource_id"),
        action=text("action"),
        actor=text("actor"),
        outcome=outcome,
        since=_time(text("since"), "since"),
        until=_time(text("until"), "until"),
    )


async def audit_list(request: Request) -> Response:
    viewer = await require(request, "view_audit", Resource("audit"))
    plane = plane_of(request)
    query = {k: request.query_params.get(k, "") for k in FILTER_FIELDS}
    try:
        filters = parse_filters(request.query_params)
        raw_before = request.query_params.get("before")
        before = positive_id(raw_before) if raw_before else None
        if raw_before and before is None:
            raise BadFilter("before must be an audit event id from a page link")
    except BadFilter as exc:
        return await page(
            request,
            viewer,
            "audit.html",
            {
                "view": None,
                "query": query,
                "error": str(exc),
                "outcomes": OUTCOMES,
                "hidden": 0,
            },
            section="audit",
            status_code=400,
        )
    view = await audit_model.audit_view(plane.powertools.db, plane.display, filters, before=before)
    rows, hidden = await viewer.visible("view_audit", "audit", view.rows, lambda e: str(e.id))
    view = replace(view, rows=rows)
    context = {
        "view": view,
        "query": query,
        "error": None,
        "outcomes": OUTCOMES,
        "hidden": hidden,
    }
    name = "audit_live.html" if is_poll(request) else "audit.html"
    return await page(request, viewer, name, context, section="audit")


async def audit_event(request: Request) -> Response:
    raw = str(request.path_params["event_id"])
    viewer = await require(request, "view_audit", Resource("audit", raw))
    plane = plane_of(request)
    event_id = positive_id(raw)
    row = None
    if event_id is not None:
        row = await audit_model.audit_event(plane.powertools.db, plane.display, event_id)
    if row is None:
        return await not_found(request, viewer, "audit event", section="audit")
    return await page(request, viewer, "audit_event.html", {"event": row}, section="audit")


routes = [
    Route("/audit", audit_list, methods=["GET"], name="audit"),
    Route("/audit/{event_id}", audit_event, methods=["GET"], name="audit_event"),
]
