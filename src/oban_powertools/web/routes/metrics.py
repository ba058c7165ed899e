"""``/metrics``: the Prometheus exposition, behind the auth seam like every page
(``view_metrics``); present only with the ``[prometheus]`` extra installed."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...seams import Resource
from ..access import plane_of, require
from ..metrics import PowertoolsCollector, render

PERMISSION = "view_metrics"


async def metrics(request: Request) -> Response:
    await require(request, PERMISSION, Resource("metrics"))
    state = request.app.state
    collector = getattr(state, "metrics_collector", None)
    if collector is None:
        collector = state.metrics_collector = PowertoolsCollector(plane_of(request).powertools)
    return await render(collector)


routes = [Route("/metrics", metrics, methods=["GET"], name="metrics")]
