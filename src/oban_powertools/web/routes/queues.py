"""``/queues``: queues across nodes, the stored decision, counts; pause, resume, scale."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...read_models import queues as queues_model
from ...seams import Resource
from ..access import Viewer, plane_of, require
from ..pages import page
from ..templating import is_poll

QUEUE_ACTIONS = ("pause_queue", "resume_queue", "scale_queue")


async def controls(viewer: Viewer, queue: queues_model.QueueView) -> dict[str, bool]:
    """Which action buttons this viewer gets for this queue."""
    return await viewer.pausable_controls(Resource("queue", queue.key), queue.paused, QUEUE_ACTIONS)


async def queue_list(request: Request) -> Response:
    viewer = await require(request, "view_queues", Resource("queue"))
    plane = plane_of(request)
    listed = await queues_model.list_queues(plane.powertools.db, plane.display)
    queues, hidden = await viewer.visible("view_queues", "queue", listed, lambda q: q.key)
    allowed = {q.key: await controls(viewer, q) for q in queues}
    read_only = await viewer.read_only(QUEUE_ACTIONS, "queue", (q.key for q in queues))
    name = "queues_live.html" if is_poll(request) else "queues.html"
    return await page(
        request,
        viewer,
        name,
        {"queues": queues, "controls": allowed, "hidden": hidden},
        section="queues",
        read_only=read_only,
    )


routes = [Route("/queues", queue_list, methods=["GET"], name="queues")]
