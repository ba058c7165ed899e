"""``/workflows`` and ``/workflows/{id}``: the keyset list, one workflow with its graph.

Workflow pages pass the same permission as the jobs they are made of (``view_jobs``, on
``Resource("workflow", id)``): a workflow is a view over its steps' jobs, and the seams
define one view permission per page family of the product contract.
"""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...errors import FilterError
from ...read_models import workflows as model
from ...seams import Resource
from ..access import plane_of, require
from ..dag import DagDrawing, NodeSpec, layout
from ..pages import not_found, page
from ..params import positive_id

PERMISSION = "view_jobs"

STATE_WORDS = {
    "suspended": "waiting",
    "available": "available",
    "scheduled": "scheduled",
    "retryable": "retryable",
    "executing": "executing",
    "completed": "completed",
    "cancelled": "cancelled",
    "discarded": "discarded",
    "pending": "pending",
    "missing": "job missing",
    "stuck": "release missed",
}


async def workflow_list(request: Request) -> Response:
    viewer = await require(request, PERMISSION, Resource("workflow"))
    plane = plane_of(request)
    try:
        filters = model.WorkflowFilters.from_query(request.query_params)
        before = model.Cursor.parse(request.query_params.get("before"))
    except FilterError as exc:
        context = {
            "error": str(exc),
            "filters": model.WorkflowFilters(),
            "listing": None,
            "states": model.WORKFLOW_STATES,
            "hidden": 0,
        }
        return await page(
            request, viewer, "workflows.html", context, section="workflows", status_code=400
        )
    listing = await model.list_workflows(plane.powertools.db, plane.display, filters, before=before)
    rows, hidden = await viewer.visible(PERMISSION, "workflow", listing.rows, lambda w: w.id)
    context = {
        "filters": filters,
        "listing": replace(listing, rows=rows),
        "hidden": hidden,
        "states": model.WORKFLOW_STATES,
        "error": None,
    }
    return await page(request, viewer, "workflows.html", context, section="workflows")


def drawing(detail: model.WorkflowDetail) -> DagDrawing | None:
    """The graph of a workflow small enough to draw (see ``model.DRAW_LIMIT``)."""
    if not detail.drawn or not detail.steps:
        return None
    specs = [
        NodeSpec(
            key=s.key,
            label=s.name,
            state="stuck" if s.stuck else s.state,
            state_label=s.label,
            href=s.href,
            tooltip=f"{s.name}: {s.label}"
            + (f" (job {s.job_id})" if s.job_id else "")
            + (f" (sub-workflow {s.sub_name})" if s.sub_name else ""),
        )
        for s in detail.steps
    ]
    return layout(
        specs,
        detail.edges,
        id="dag",
        title=f"Graph of workflow {detail.row.name}",
        states=STATE_WORDS,
    )


async def workflow_detail(request: Request) -> Response:
    raw = str(request.path_params["workflow_id"])
    viewer = await require(request, PERMISSION, Resource("workflow", raw))
    plane = plane_of(request)
    workflow_id = model.parse_workflow_id(raw)
    start = positive_id(request.query_params.get("steps_from") or "") or 0
    detail = (
        await model.workflow_detail(
            plane.powertools.db, plane.display, workflow_id, steps_from=start
        )
        if workflow_id
        else None
    )
    if detail is None:
        return await not_found(request, viewer, "workflow", section="workflows")
    resource = Resource("workflow", detail.row.id)
    allowed = {name: await viewer.can(name, resource) for name in model.WORKFLOW_ACTIONS}
    context = {
        "wf": detail,
        "dag": drawing(detail),
        "draw_limit": model.DRAW_LIMIT,
        "state_words": STATE_WORDS,
        "controls": {name: allowed[name] and name in detail.actions for name in allowed},
    }
    return await page(
        request,
        viewer,
        "workflow_detail.html",
        context,
        section="workflows",
        read_only=not any(allowed.values()),
    )


routes = [
    Route("/workflows", workflow_list, methods=["GET"], name="workflows"),
    Route("/workflows/{workflow_id}", workflow_detail, methods=["GET"], name="workflow"),
]
