"""The JSON API: the same pipeline as the pages, for scripts and other tools.

    POST /api/actions/preview   {"action": "pause_cron_entry", "targets": ["nightly_sync"],
                                 "params": {}}
    POST /api/actions/confirm   {"token": "...", "reason": "..."}
    GET  /api/previews/{token}
    GET  /api/jobs/{id}/explain     why a job is (not) running: reasons, evidence, next paths

Authentication is the host's seam, as for pages (a session cookie, or whatever the host's
``current_actor`` reads, e.g. a bearer token). Cross-site forgery is refused twice over:
only ``application/json`` bodies are accepted, which a cross-site form cannot send and a
cross-site script cannot send without a CORS preflight this app never answers; and a
browser's Origin, when present, must be this site.

Free text in responses (a preview's effect, error messages) passes the display policy on
the ``api`` surface, as it passes it on the pages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Mapping
from typing import Any

import psycopg
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ...actions.errors import ActionError, PreviewConsumed, PreviewDrifted, PreviewNotFound
from ...actions.preview import Preview
from ...display import Display
from ...read_models.explain import explain
from ...read_models.principal import shown_actor
from ...seams import Resource
from ..access import Viewer, current_viewer, plane_of
from ..params import positive_id, preview_token
from ..security import same_origin

logger = logging.getLogger(__name__)

MAX_BODY = 2 * 1024 * 1024  # a bulk set of 100k ids fits


def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


def _display(request: Request) -> Display:
    return plane_of(request).display.on("api")


def preview_json(display: Display, preview: Preview) -> dict[str, Any]:
    resource = Resource(preview.resource_type, preview.resource_id)
    return {
        "token": preview.token,
        "action": preview.action,
        "resource": preview.resource,
        "targets": preview.targets,
        "effect": display.free_text("effect", preview.effect, resource=resource, field="effect"),
        "actor": shown_actor(display, preview.actor_id, preview.actor_label).to_dict(),
        "status": preview.status,
        "expires_at": preview.expires_at.isoformat(),
        "audit_event_id": preview.audit_event_id,
    }


async def _viewer_and_body(request: Request) -> tuple[Viewer, Mapping[str, Any]] | JSONResponse:
    viewer = await current_viewer(request)
    if viewer is None:
        return error(401, "not_signed_in", "sign in first")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        return error(415, "unsupported_media_type", "send the body as application/json")
    if request.headers.get("origin") and not same_origin(request, plane_of(request).trusted):
        return error(403, "cross_origin", "requests from other sites are refused")
    body = await request.body()
    if len(body) > MAX_BODY:
        return error(413, "too_large", f"the body must be at most {MAX_BODY} bytes")
    try:
        payload = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return error(400, "invalid_json", "the body is not valid JSON")
    except RecursionError:
        # json's decoder recurses per level: "[[[[..." a megabyte deep exhausts the stack.
        return error(400, "invalid_json", "the body is nested too deeply")
    if not isinstance(payload, dict):
        return error(400, "invalid_json", "the body must be a JSON object")
    try:
        # JSON may escape lone surrogates ("\ud800"), which no database text can hold:
        # refuse them here rather than fail half-way through a transaction.
        json.dumps(payload, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return error(400, "invalid_json", "the body holds text that is not valid Unicode")
    return viewer, payload


def action_error(display: Display, exc: ActionError) -> JSONResponse:
    extra: dict[str, Any] = {}
    if isinstance(exc, PreviewConsumed):
        extra["audit_event_id"] = exc.audit_event_id
    if isinstance(exc, PreviewDrifted):
        extra["drifted"] = exc.drifted
    message = display.free_text("error", str(exc), field="error")
    return error(exc.status, exc.code, message, **extra)


def database_refused(exc: psycopg.Error, step: str) -> JSONResponse:
    """A non-operational database error inside the pipeline's transaction: rolled back.

    (OperationalError is left to the app's 503 handler: a connection lost during COMMIT
    leaves the outcome unknown.) Logged by class and SQLSTATE only, since the database's
    message can quote the refused row.
    """
    logger.error(
        "api %s refused by the database (%s, SQLSTATE %s); rolled back",
        step,
        type(exc).__name__,
        exc.sqlstate or "?",
    )
    return error(
        500,
        "database_refused",
        f"the database refused this {step} ({type(exc).__name__}) and rolled it back: "
        "nothing was changed and no audit event was written",
    )


async def answered(display: Display, step: str, answer: Awaitable[JSONResponse]) -> JSONResponse:
    """One pipeline step's answer, or the error it ended in: an action's refusal, or a
    statement the database refused (the transaction rolled back). A lost connection
    (OperationalError) is left to the app's 503 handler: the outcome is unknown."""
    try:
        return await answer
    except ActionError as exc:
        return action_error(display, exc)
    except psycopg.OperationalError:
        raise
    except psycopg.Error as exc:
        return database_refused(exc, step)


async def preview(request: Request) -> JSONResponse:
    checked = await _viewer_and_body(request)
    if isinstance(checked, JSONResponse):
        return checked
    viewer, body = checked
    action, targets, params = body.get("action"), body.get("targets"), body.get("params", {})
    if not isinstance(action, str):
        return error(400, "invalid_request", "'action' must be an action name")
    if isinstance(targets, str):
        targets = [targets]
    if not isinstance(targets, list) or not all(isinstance(t, str | int) for t in targets):
        return error(400, "invalid_request", "'targets' must be a list of ids or names")
    if not isinstance(params, dict):
        return error(400, "invalid_request", "'params' must be an object")
    pipeline = plane_of(request).powertools.pipeline
    display = _display(request)

    async def previewed() -> JSONResponse:
        ids = [str(t) for t in targets]
        stored = await pipeline.preview(viewer.actor, action, ids, params, surface="api")
        return JSONResponse(preview_json(display, stored), status_code=201)

    return await answered(display, "preview", previewed())


async def confirm(request: Request) -> JSONResponse:
    checked = await _viewer_and_body(request)
    if isinstance(checked, JSONResponse):
        return checked
    viewer, body = checked
    token, reason = body.get("token"), body.get("reason")
    if not isinstance(token, str) or (reason is not None and not isinstance(reason, str)):
        return error(400, "invalid_request", "'token' (and 'reason', if given) must be strings")
    pipeline = plane_of(request).powertools.pipeline
    display = _display(request)

    async def confirmed(token: str, reason: str | None) -> JSONResponse:
        if preview_token(token) is None:
            raise PreviewNotFound()  # not shaped like a token: no preview can match
        result = await pipeline.execute(viewer.actor, token, reason, surface="api")
        preview = preview_json(display, result.preview)
        return JSONResponse(
            {
                "audit_event_id": result.audit_event_id,
                "preview": preview,
                # Targets that had changed by the confirm and were left (a selected set).
                "skipped": result.skipped,
            }
        )

    return await answered(display, "confirm", confirmed(token, reason))


async def show_preview(request: Request) -> JSONResponse:
    viewer = await current_viewer(request)
    if viewer is None:
        return error(401, "not_signed_in", "sign in first")
    token = preview_token(request.path_params["token"])
    stored = await plane_of(request).powertools.pipeline.get_preview(token) if token else None
    # Someone else's preview is reported exactly like a missing one: tokens are secrets.
    if stored is None or stored.actor_id != viewer.principal.id:
        return error(404, "preview_not_found", "no such preview")
    return JSONResponse(preview_json(_display(request), stored))


async def explain_job(request: Request) -> JSONResponse:
    """The job page's "Why isn't this running?" as JSON, under the same permission."""
    viewer = await current_viewer(request)
    if viewer is None:
        return error(401, "not_signed_in", "sign in first")
    raw = str(request.path_params["job_id"])
    if not await viewer.can("view_jobs", Resource("job", raw)):
        return error(403, "unauthorized", "not allowed to view jobs")
    job_id = positive_id(raw)
    plane = plane_of(request)
    found = (
        await explain(
            plane.powertools.db,
            _display(request),
            job_id,
            lifeline_grace=plane.config.lifeline_grace_seconds,
        )
        if job_id
        else None
    )
    if found is None:
        return error(404, "job_not_found", "no such job")
    return JSONResponse(found.to_dict())


routes = [
    Route("/api/actions/preview", preview, methods=["POST"]),
    Route("/api/actions/confirm", confirm, methods=["POST"]),
    Route("/api/previews/{token}", show_preview, methods=["GET"]),
    Route("/api/jobs/{job_id}/explain", explain_job, methods=["GET"]),
]
