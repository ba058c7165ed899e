"""``/forensics``: one evidence bundle per subject, or a list of recent subjects to pick."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...audit import queries as audit_queries
from ...forensics import SUBJECT_TYPES, EvidenceBundle, build_bundle
from ...seams import Resource
from ..access import Viewer, plane_of, require
from ..pages import page


def _subject(request: Request) -> tuple[str, str] | None:
    resource_type = (request.query_params.get("resource_type") or "").strip()
    resource_id = (request.query_params.get("resource_id") or "").strip()
    if not resource_type and not resource_id:
        return None
    return resource_type[:64], resource_id[:255]


async def _bundle(request: Request, viewer: Viewer, subject: tuple[str, str]) -> EvidenceBundle:
    plane = plane_of(request)
    return await build_bundle(
        plane.powertools.db,
        plane.display.on("forensics"),
        subject[0],
        subject[1],
        bridge=await viewer.sees_bridge(),
        lifeline_grace=plane.config.lifeline_grace_seconds,
    )


async def forensics(request: Request) -> Response:
    subject = _subject(request)
    if subject is None:
        viewer = await require(request, "view_forensics", Resource("forensics"))
        plane = plane_of(request)
        async with plane.powertools.db.connection() as conn:
            subjects = await audit_queries.recent_subjects(conn)
        shown = [
            {
                "resource_type": s.resource_type,
                "resource_id": s.resource_id,
                "label": plane.display.text(
                    s.resource_type,
                    s.resource_id,
                    resource=Resource(s.resource_type, s.resource_id),
                    field="resource_id",
                ),
                "last_at": s.last_at,
                "events": s.events,
            }
            for s in subjects
            if s.resource_type in SUBJECT_TYPES
        ]
        return await page(
            request,
            viewer,
            "forensics_pick.html",
            {"subjects": shown, "types": SUBJECT_TYPES, "error": None},
            section="forensics",
        )
    resource_type, resource_id = subject
    viewer = await require(request, "view_forensics", Resource(resource_type, resource_id))
    if resource_type not in SUBJECT_TYPES or not resource_id:
        return await page(
            request,
            viewer,
            "forensics_pick.html",
            {
                "subjects": [],
                "types": SUBJECT_TYPES,
                "error": "Choose a subject: forensics covers cron entries, jobs, queues and "
                "workflows, "
                "and needs both resource_type and resource_id.",
            },
            section="forensics",
            status_code=400,
        )
    bundle = await _bundle(request, viewer, subject)
    return await page(request, viewer, "forensics.html", {"bundle": bundle}, section="forensics")


async def forensics_export(request: Request) -> Response:
    """The bundle as JSON, for attaching to an incident (same policy, same permission)."""
    subject = _subject(request)
    if subject is None or subject[0] not in SUBJECT_TYPES or not subject[1]:
        await require(request, "view_forensics", Resource("forensics"))
        return Response(
            json.dumps(
                {"error": "pass resource_type (cron_entry, job, queue, workflow) and resource_id"}
            ),
            status_code=400,
            media_type="application/json",
        )
    viewer = await require(request, "view_forensics", Resource(*subject))
    bundle = await _bundle(request, viewer, subject)
    body = json.dumps(bundle.to_dict(), indent=2, ensure_ascii=False)
    filename = f"forensics-{subject[0]}.json"
    return Response(
        body,
        media_type="application/json",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


routes = [
    Route("/forensics", forensics, methods=["GET"], name="forensics"),
    Route("/forensics/bundle.json", forensics_export, methods=["GET"], name="forensics_export"),
]
