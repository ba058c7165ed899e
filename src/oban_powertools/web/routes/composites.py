"""``/chains``, ``/chains/{key}``, ``/batches`` and ``/batches/{id}``: where a chain waits
and why, a batch's progress and the callbacks it enqueued. Viewing them is viewing jobs
(``view_jobs``); resuming a held chain is the audited ``resume_chain`` action."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...read_models import batches as batch_model
from ...read_models import chains as chain_model
from ...seams import Resource
from ..access import plane_of, require
from ..pages import not_found, page


async def chain_list(request: Request) -> Response:
    viewer = await require(request, "view_jobs", Resource("chain"))
    plane = plane_of(request)
    state = request.query_params.get("state") or None
    if state not in (None, *chain_model.CHAIN_STATES):
        state = None
    rows = await chain_model.chains(plane.powertools.db, plane.display, state)
    context = {"chains": rows, "state": state, "states": chain_model.CHAIN_STATES}
    return await page(request, viewer, "chains.html", context, section="jobs", read_only=True)


async def chain_detail(request: Request) -> Response:
    key = str(request.path_params["key"])
    viewer = await require(request, "view_jobs", Resource("chain", key))
    plane = plane_of(request)
    chain = (
        await chain_model.chain_view(plane.powertools.db, plane.display, key)
        if key.strip() and key.isprintable() and len(key) <= 255
        else None
    )
    if chain is None:
        return await not_found(request, viewer, "chain", section="jobs")
    can_resume = chain.resumable and await viewer.can("resume_chain", Resource("chain", key))
    context = {"chain": chain, "can_resume": can_resume}
    return await page(
        request, viewer, "chain_detail.html", context, section="jobs", read_only=not can_resume
    )


async def batch_list(request: Request) -> Response:
    viewer = await require(request, "view_jobs", Resource("batch"))
    plane = plane_of(request)
    rows = await batch_model.batches(plane.powertools.db, plane.display)
    return await page(
        request, viewer, "batches.html", {"batches": rows}, section="jobs", read_only=True
    )


async def batch_detail(request: Request) -> Response:
    raw = str(request.path_params["batch_id"])
    viewer = await require(request, "view_jobs", Resource("batch", raw))
    plane = plane_of(request)
    batch_id = batch_model.parse_batch_id(raw)
    batch = (
        await batch_model.batch_view(plane.powertools.db, plane.display, batch_id)
        if batch_id is not None
        else None
    )
    if batch is None:
        return await not_found(request, viewer, "batch", section="jobs")
    return await page(
        request, viewer, "batch_detail.html", {"batch": batch}, section="jobs", read_only=True
    )


routes = [
    Route("/chains", chain_list, methods=["GET"], name="chains"),
    Route("/chains/{key:path}", chain_detail, methods=["GET"], name="chain"),
    Route("/batches", batch_list, methods=["GET"], name="batches"),
    Route("/batches/{batch_id}", batch_detail, methods=["GET"], name="batch"),
]
