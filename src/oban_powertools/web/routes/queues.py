"""``/queues``: queues across nodes, the stored decision, counts, limiters' use; pause,
resume, scale, change limits. ``/queues/{queue}``: one queue's charts (the job rollup's
throughput, failures and wait over the last hour or day)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...read_models import lifeline as lifeline_model
from ...read_models import limits as limits_model
from ...read_models import queues as queues_model
from ...read_models import rollups
from ...seams import Resource
from ..access import Viewer, plane_of, require
from ..charts import SERIES, activity_chart
from ..pages import not_found, page
from ..templating import is_poll

QUEUE_ACTIONS = ("pause_queue", "resume_queue", "scale_queue")
LIFELINE_ACTIONS = ("rescue_jobs", "discard_stuck_jobs")
# Orphaned and stuck jobs per queue whose evidence the Lifeline section writes out.
EVIDENCE_EACH = 3


@dataclass(frozen=True, slots=True)
class LifelineSection:
    """The Lifeline section of a page: the jobs this viewer may view, whether it may
    preview each repair (the pipeline checks every job again), how many were left out."""

    data: lifeline_model.Lifeline
    can_rescue: bool
    can_discard: bool
    hidden: int
    each: int  # jobs of each kind per queue whose evidence the section writes out


async def lifeline_section(viewer: Viewer) -> LifelineSection:
    plane = viewer.plane
    config = plane.config
    async with plane.powertools.db.connection() as conn:
        data = await lifeline_model.lifeline(
            conn,
            grace=config.lifeline_grace_seconds,
            stuck_after=config.stuck_after_seconds,
        )
    orphaned, hidden_orphaned = await viewer.visible(
        "view_jobs", "job", data.orphaned, lambda j: str(j.id)
    )
    stuck, hidden_stuck = await viewer.visible("view_jobs", "job", data.stuck, lambda j: str(j.id))
    shown = {j.id for j in (*orphaned, *stuck)}
    each = EVIDENCE_EACH
    # The display policy is asked about the jobs the section writes out, after the seam
    # has said which the viewer may see: a few per queue, not every listed id.
    visible = [
        replace(
            q,
            orphaned=[j for j in q.orphaned if j.id in shown],
            stuck=[j for j in q.stuck if j.id in shown],
        )
        for q in data.by_queue
    ]
    by_queue = [q.evidence(plane.display, each=each) for q in visible if q.orphaned or q.stuck]
    return LifelineSection(
        data=replace(data, orphaned=orphaned, stuck=stuck, by_queue=by_queue),
        can_rescue=await viewer.can("rescue_jobs", Resource("job")),
        can_discard=await viewer.can("discard_stuck_jobs", Resource("job")),
        hidden=hidden_orphaned + hidden_stuck,
        each=each,
    )


LIMITS_ACTION = "set_queue_limits"


async def controls(viewer: Viewer, queue: queues_model.QueueView) -> dict[str, bool]:
    """Which action buttons this viewer gets for this queue."""
    resource = Resource("queue", queue.key)
    allowed = await viewer.pausable_controls(resource, queue.paused, QUEUE_ACTIONS)
    return allowed | {LIMITS_ACTION: await viewer.can(LIMITS_ACTION, resource)}


async def queue_list(request: Request) -> Response:
    viewer = await require(request, "view_queues", Resource("queue"))
    plane = plane_of(request)
    listed = await queues_model.list_queues(plane.powertools.db, plane.display)
    queues, hidden = await viewer.visible("view_queues", "queue", listed, lambda q: q.key)
    allowed = {q.key: await controls(viewer, q) for q in queues}
    limiters = await limits_model.queue_limiters(plane.powertools.db, plane.display)
    actions = (*QUEUE_ACTIONS, LIMITS_ACTION)
    read_only = await viewer.read_only(actions, "queue", (q.key for q in queues))
    name = "queues_live.html" if is_poll(request) else "queues.html"
    return await page(
        request,
        viewer,
        name,
        {
            "queues": queues,
            "controls": allowed,
            "hidden": hidden,
            "limiters": limiters,
            "lifeline": await lifeline_section(viewer),
            "lifeline_return": "/queues",
        },
        section="queues",
        read_only=read_only,
    )


async def queue_detail(request: Request) -> Response:
    key = request.path_params["queue"]
    viewer = await require(request, "view_queues", Resource("queue", key))
    plane = plane_of(request)
    found = await queues_model.list_queues(plane.powertools.db, plane.display, queue=key)
    window = rollups.window_of(request.query_params.get("window"))
    activity = await rollups.load(plane.powertools.db, window, queue=key)
    # A queue no node runs any more still has its rollup rows: the page shows those.
    if not found and activity.empty:
        return await not_found(request, viewer, "queue", section="queues")
    name = (
        found[0].name
        if found
        else plane.display.text("queue", key, resource=Resource("queue", key), field="queue")
    )
    context = {
        "key": key,
        "name": name,
        "queue": found[0] if found else None,
        "activity": activity,
        "charts": [activity_chart(activity, s) for s in SERIES],
    }
    template = "queue_detail_live.html" if is_poll(request) else "queue_detail.html"
    return await page(request, viewer, template, context, section="queues")


routes = [
    Route("/queues", queue_list, methods=["GET"], name="queues"),
    Route("/queues/{queue}", queue_detail, methods=["GET"], name="queue"),
]
