"""``/``: the diagnosis-first overview."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...actions import all_actions
from ...read_models import overview as overview_model
from ...seams import Resource
from ..access import plane_of, require
from ..pages import page
from ..templating import is_poll


async def overview(request: Request) -> Response:
    viewer = await require(request, "view_overview", Resource("overview"))
    plane = plane_of(request)
    data = await overview_model.overview(
        plane.powertools.db,
        plane.display,
        bridge=await viewer.sees_bridge(),
        extra=plane.config.extra,
        include_audit=await viewer.can("view_audit", Resource("audit")),
    )
    # The overview links to native actions; say up front when this actor cannot take any.
    read_only = not await viewer.can_any(
        (action.name, Resource(action.resource_type)) for action in all_actions()
    )
    name = "overview_live.html" if is_poll(request) else "overview.html"
    return await page(
        request, viewer, name, {"data": data}, section="overview", read_only=read_only
    )


routes = [Route("/", overview, methods=["GET"], name="overview")]
