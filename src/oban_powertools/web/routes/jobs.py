"""``/jobs`` and ``/jobs/{id}``: filtered keyset lists, details, single and bulk actions."""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...errors import FilterError
from ...forensics import DEFAULT_WINDOW, job_bundle
from ...read_models import job_detail as detail_model
from ...read_models import jobs as jobs_model
from ...read_models.common import JOB_STATES, now_utc
from ...read_models.explain import explain
from ...seams import Resource
from ..access import plane_of, require
from ..pages import not_found, page
from ..params import positive_id
from ..templating import is_poll


def cursor(raw: str | None, what: str) -> int | None:
    """The ``before`` cursor of a paged list: absent, or an id from a page link. Anything
    else is refused rather than ignored, which would show the first page as if it were
    the one asked for."""
    if not raw:
        return None
    value = positive_id(raw)
    if value is None:
        raise FilterError(f"before must be a {what} id from a page link")
    return value


async def job_list(request: Request) -> Response:
    viewer = await require(request, "view_jobs", Resource("job"))
    plane = plane_of(request)
    try:
        filters = jobs_model.JobFilters.from_query(request.query_params)
        before = cursor(request.query_params.get("before"), "job")
    except FilterError as exc:
        return await page(
            request,
            viewer,
            "jobs.html",
            {
                "error": str(exc),
                "filters": jobs_model.JobFilters(),
                "listing": None,
                "states": JOB_STATES,
                "bulk": {},
                "hidden": 0,
            },
            section="jobs",
            status_code=400,
        )
    listing = await jobs_model.list_jobs(
        plane.powertools.db,
        plane.display,
        filters,
        before=before,
    )
    rows, hidden = await viewer.visible("view_jobs", "job", listing.rows, lambda j: str(j.id))
    listing = replace(listing, rows=rows)
    family = Resource("job")
    bulk = {name: await viewer.can(name, family) for name in jobs_model.JOB_ACTIONS}
    context = {
        "filters": filters,
        "listing": listing,
        "hidden": hidden,
        "states": JOB_STATES,
        "bulk": bulk,
        "error": None,
    }
    name = "jobs_live.html" if is_poll(request) else "jobs.html"
    return await page(
        request, viewer, name, context, section="jobs", read_only=not any(bulk.values())
    )


async def job_detail(request: Request) -> Response:
    raw = str(request.path_params["job_id"])
    viewer = await require(request, "view_jobs", Resource("job", raw))
    plane = plane_of(request)
    job_id = positive_id(raw)
    job = (
        await detail_model.job_detail(plane.powertools.db, plane.display, job_id)
        if job_id
        else None
    )
    if job is None:
        return await not_found(request, viewer, "job", section="jobs")
    resource = Resource("job", str(job.id))
    allowed = {name: await viewer.can(name, resource) for name in jobs_model.JOB_ACTIONS}
    grace = plane.config.lifeline_grace_seconds
    explanation = await explain(plane.powertools.db, plane.display, job.id, lifeline_grace=grace)
    # The timeline is the job's forensics chronology, shown here on the page surface; the
    # bundle reuses the explanation rather than asking the explainer again.
    bundle = await job_bundle(
        plane.powertools.db,
        plane.display,
        str(job.id),
        bridge=False,
        now=now_utc(),
        window=DEFAULT_WINDOW,
        explained=explanation,
        lifeline_grace=grace,
    )
    context = {
        "job": job,
        "explanation": explanation
        if explanation and (explanation.waiting or explanation.reasons)
        else None,
        "controls": {name: allowed[name] and name in job.actions for name in allowed},
        "chronology": bundle.chronology,
        "completeness": bundle.completeness,
        # The lifeline's word on an executing job whose producer stopped heartbeating.
        "orphaned": bundle.diagnosis if bundle.state == "orphaned" else None,
    }
    template = "job_detail_live.html" if is_poll(request) else "job_detail.html"
    return await page(
        request, viewer, template, context, section="jobs", read_only=not any(allowed.values())
    )


routes = [
    Route("/jobs", job_list, methods=["GET"], name="jobs"),
    Route("/jobs/{job_id}", job_detail, methods=["GET"], name="job"),
]
