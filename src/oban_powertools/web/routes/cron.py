"""``/cron`` and ``/cron/{name}``: entries, their schedule and pause state, and actions."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...audit.queries import AuditFilters
from ...read_models import audit as audit_model
from ...read_models import cron as cron_model
from ...seams import Resource
from ..access import Viewer, plane_of, require
from ..pages import not_found, page
from ..templating import is_poll

CRON_ACTIONS = ("pause_cron_entry", "resume_cron_entry", "run_cron_entry")


async def controls(viewer: Viewer, entry: cron_model.CronEntryView) -> dict[str, bool]:
    """Which action buttons this viewer gets for this entry."""
    resource = Resource("cron_entry", entry.key)
    return await viewer.pausable_controls(resource, entry.paused, CRON_ACTIONS)


async def cron_list(request: Request) -> Response:
    viewer = await require(request, "view_cron", Resource("cron_entry"))
    plane = plane_of(request)
    listed = await cron_model.list_entries(plane.powertools.db, plane.display)
    entries, hidden = await viewer.visible("view_cron", "cron_entry", listed, lambda e: e.key)
    allowed = {e.key: await controls(viewer, e) for e in entries}
    runtime = await cron_model.runtime_running(plane.powertools.db)
    context = {"entries": entries, "controls": allowed, "hidden": hidden, "runtime": runtime}
    name = "cron_live.html" if is_poll(request) else "cron_list.html"
    read_only = await viewer.read_only(CRON_ACTIONS, "cron_entry", (e.key for e in entries))
    return await page(request, viewer, name, context, section="cron", read_only=read_only)


async def cron_detail(request: Request) -> Response:
    name = request.path_params["name"]
    viewer = await require(request, "view_cron", Resource("cron_entry", name))
    plane = plane_of(request)
    detail = await cron_model.entry_detail(plane.powertools.db, plane.display, name)
    if detail is None:
        return await not_found(request, viewer, "cron entry", section="cron")
    audit = None
    if await viewer.can("view_audit", Resource("audit")):
        audit = await audit_model.audit_view(
            plane.powertools.db,
            plane.display,
            AuditFilters(resource_type="cron_entry", resource_id=name),
            limit=5,
        )
    context = {
        "detail": detail,
        "entry": detail.entry,
        "controls": await controls(viewer, detail.entry),
        "audit": audit,
    }
    template = "cron_detail_live.html" if is_poll(request) else "cron_detail.html"
    read_only = await viewer.read_only(CRON_ACTIONS, "cron_entry", [name])
    return await page(request, viewer, template, context, section="cron", read_only=read_only)


routes = [
    Route("/cron", cron_list, methods=["GET"], name="cron"),
    Route("/cron/{name}", cron_detail, methods=["GET"], name="cron_entry"),
]
