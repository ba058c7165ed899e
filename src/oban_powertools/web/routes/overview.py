"""``/``: the diagnosis-first overview."""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...actions import all_actions
from ...read_models import overview as overview_model
from ...read_models import rollups
from ...seams import Resource
from ..access import Viewer, plane_of, require
from ..charts import SERIES, activity_chart
from ..pages import page
from ..templating import is_poll
from .queues import lifeline_beside, lifeline_section

# The page permission that lets a viewer see one resource of each kind the overview names.
VIEW_OF = {"cron_entry": "view_cron", "queue": "view_queues", "job": "view_jobs"}


async def visible_parts(
    viewer: Viewer, data: overview_model.Overview
) -> tuple[overview_model.Overview, int]:
    """The overview without the items and rows about resources this viewer may not view
    one by one, and how many were left out (aggregates such as counts stay)."""
    attention = [
        item
        for item in data.attention
        if item.subject is None
        or await viewer.can(VIEW_OF.get(item.subject.type, "view_overview"), item.subject)
    ]
    stuck, hidden_stuck = await viewer.visible("view_jobs", "job", data.stuck, lambda j: str(j.id))
    discarded, hidden_discarded = await viewer.visible(
        "view_jobs", "job", data.discarded, lambda j: str(j.id)
    )
    recent, hidden_recent = await viewer.visible(
        "view_audit", "audit", data.recent_actions, lambda e: str(e.id)
    )
    queues, hidden_queues = await viewer.visible(
        "view_queues", "queue", data.by_queue.queues, lambda q: q.key
    )
    hidden = (
        len(data.attention)
        - len(attention)
        + hidden_stuck
        + hidden_discarded
        + hidden_recent
        + hidden_queues
    )
    parts = replace(
        data,
        attention=attention,
        stuck=stuck,
        discarded=discarded,
        recent_actions=recent,
        by_queue=replace(data.by_queue, queues=queues),
    )
    return parts, hidden


async def overview(request: Request) -> Response:
    viewer = await require(request, "view_overview", Resource("overview"))
    plane = plane_of(request)
    bridge = await viewer.sees_bridge()
    include_audit = await viewer.can("view_audit", Resource("audit"))
    async with lifeline_beside(plane) as lifeline:
        data = await overview_model.overview(
            plane.powertools.db,
            plane.display,
            bridge=bridge,
            stuck_after=plane.config.stuck_after_seconds,
            include_audit=include_audit,
            window=rollups.window_of(request.query_params.get("window")),
        )
        data, hidden = await visible_parts(viewer, data)
        # The overview links to native actions; say up front when this actor cannot take any.
        read_only = not await viewer.can_any(
            (action.name, Resource(action.resource_type)) for action in all_actions()
        )
        name = "overview_live.html" if is_poll(request) else "overview.html"
        return await page(
            request,
            viewer,
            name,
            {
                "data": data,
                "hidden": hidden,
                "charts": [activity_chart(data.activity, s) for s in SERIES],
                "lifeline": await lifeline_section(viewer, lifeline),
                "lifeline_return": "/",
            },
            section="overview",
            read_only=read_only,
        )


routes = [Route("/", overview, methods=["GET"], name="overview")]
