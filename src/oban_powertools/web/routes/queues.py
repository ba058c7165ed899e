"""``/queues``: queues across nodes, the stored decision, counts, limiters' use; pause,
resume, scale, change limits. ``/queues/{queue}``: one queue's charts (the job rollup's
throughput, failures and wait over the last hour or day)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...read_models import lifeline as lifeline_model
from ...read_models import limits as limits_model
from ...read_models import queues as queues_model
from ...read_models import rollups
from ...seams import Resource
from ..access import Plane, Viewer, plane_of, require
from ..charts import SERIES, activity_chart
from ..pages import not_found, page
from ..templating import is_poll

QUEUE_ACTIONS = ("pause_queue", "resume_queue", "scale_queue")
LIFELINE_ACTIONS = ("rescue_jobs", "discard_stuck_jobs")


@dataclass(frozen=True, slots=True)
class LifelineSection:
    """The Lifeline section of a page: per queue the viewer may view, the counts and the
    evidence of the few sampled jobs the viewer may view; whether it may preview each
    repair (a repair names a queue and kind; the pipeline finds the jobs and asks the
    seam about every one); how many queues and sampled jobs were left out."""

    data: lifeline_model.Lifeline
    can_rescue: bool
    can_discard: bool
    hidden_queues: int
    hidden_jobs: int


async def lifeline_read(plane: Plane) -> lifeline_model.Lifeline:
    """The section's data as stored, on a pooled connection of its own: a page starts it
    beside its other reads (see :func:`lifeline_section`)."""
    config = plane.config
    async with plane.powertools.db.connection() as conn:
        return await lifeline_model.lifeline(
            conn,
            grace=config.lifeline_grace_seconds,
            stuck_after=config.stuck_after_seconds,
        )


@asynccontextmanager
async def lifeline_beside(plane: Plane) -> AsyncIterator[Awaitable[lifeline_model.Lifeline]]:
    """The section's read, started while the page reads the rest: at 10M jobs it takes
    about as long as the rest of a page's reads, and the two overlap on two pooled
    connections. Cancelled when the page fails before it awaits it."""
    task = asyncio.create_task(lifeline_read(plane))
    try:
        yield task
    except BaseException:
        task.cancel()
        raise


async def lifeline_section(
    viewer: Viewer, read: Awaitable[lifeline_model.Lifeline] | None = None
) -> LifelineSection:
    """The section for this viewer, from ``read`` (see :func:`lifeline_beside`) or read
    now."""
    plane = viewer.plane
    data = await (read if read is not None else lifeline_read(plane))
    queues, hidden_queues = await viewer.visible(
        "view_queues", "queue", data.by_queue, lambda q: q.key
    )
    sampled = [j for q in queues for j in (*q.orphaned, *q.stuck)]
    seen, hidden_jobs = await viewer.visible("view_jobs", "job", sampled, lambda j: str(j.id))
    ids = {j.id for j in seen}
    # The display policy is asked about what the section writes out only: the names of
    # the queues shown and the sampled jobs the viewer may see.
    by_queue = [
        replace(
            q,
            orphaned=[j for j in q.orphaned if j.id in ids],
            stuck=[j for j in q.stuck if j.id in ids],
        ).evidence(plane.display)
        for q in queues
    ]
    if hidden_queues:
        # Totals of the queues shown only: a hidden queue's jobs are not counted either.
        data = replace(
            data,
            orphaned_count=replace(
                data.orphaned_count, value=sum(q.orphaned_count for q in by_queue)
            ),
            stuck_count=replace(data.stuck_count, value=sum(q.stuck_count for q in by_queue)),
        )
    return LifelineSection(
        data=replace(data, by_queue=by_queue),
        can_rescue=await viewer.can("rescue_jobs", Resource("job")),
        can_discard=await viewer.can("discard_stuck_jobs", Resource("job")),
        hidden_queues=hidden_queues,
        hidden_jobs=hidden_jobs,
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
    async with lifeline_beside(plane) as lifeline:
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
                "lifeline": await lifeline_section(viewer, lifeline),
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
