"""The mutation UI: preview → reason → confirm → result, for every pipeline action.

Handlers never change anything themselves: they pass the actor, the action and its
targets to the pipeline, which authorizes, previews, re-checks and writes the audit event
in one transaction. Every POST is CSRF-checked first. Without JavaScript the forms post and
the pages render in full; with htmx the preview panel swaps in place and a confirmed
action navigates to its result page (POST-redirect-GET either way).
"""

from __future__ import annotations

import logging
import re

import psycopg
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ...actions import ActionError
from ...actions.errors import (
    InvalidReason,
    PreviewConsumed,
    PreviewNotFound,
    ReasonRequired,
    ReasonTooLong,
    ReasonTooShort,
)
from ...audit import queries as audit_queries
from ...read_models import audit as audit_model
from ...read_models.actions import PreviewView, back_path, preview_view
from ...seams import Resource
from ..access import Forbidden, Viewer, check_csrf, plane_of, require_actor
from ..pages import not_found, page, templates_of
from ..params import positive_id, preview_token
from ..templating import href, is_htmx

logger = logging.getLogger(__name__)

# Mount-relative paths only: no scheme, no "//host", nothing a redirect could abuse.
RETURN_PATH = re.compile(r"^/(?!/)[A-Za-z0-9_.:~/?=&%+-]{0,500}$")
REASON_ERRORS = (ReasonRequired, ReasonTooShort, ReasonTooLong, InvalidReason)
PARAM_PREFIX = "param."


def _return_to(form: FormData, fallback: str = "/") -> str:
    value = form.get("return_to")
    if isinstance(value, str) and RETURN_PATH.match(value):
        return value
    return fallback


def _text(form: FormData, name: str, limit: int = 20_000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


async def _panel(
    request: Request,
    viewer: Viewer,
    *,
    preview: PreviewView | None,
    return_to: str,
    error: str | None = None,
    consumed_event: int | None = None,
    reason: str = "",
    status_code: int = 200,
) -> Response:
    context = {
        "preview": preview,
        "return_to": return_to,
        "error": error,
        "consumed_event": consumed_event,
        "reason": reason,
    }
    if is_htmx(request):
        return templates_of(request).render(
            request, "_action_panel.html", context, viewer=viewer, status_code=status_code
        )
    return await page(request, viewer, "action.html", context, section="", status_code=status_code)


def _message(viewer: Viewer, exc: ActionError) -> str:
    text = viewer.plane.display.free_text("error", str(exc), field="error")
    return text[:1].upper() + text[1:]


def database_refused(exc: psycopg.Error, step: str) -> str:
    """The operator's message when the database rejected a preview or confirm.

    Only errors other than OperationalError get here (those are a 503: the connection may
    have dropped during COMMIT, so the outcome is unknown). Anything else failed inside
    the pipeline's transaction, which rolled back: nothing changed, nothing was audited.
    The log line names the error class and SQLSTATE only: the database's message and
    detail can quote the row it refused, job arguments included.
    """
    logger.error(
        "action %s refused by the database (%s, SQLSTATE %s); rolled back",
        step,
        type(exc).__name__,
        exc.sqlstate or "?",
    )
    # The panel prefixes "Nothing was changed." and ends the sentence.
    return (
        f"The database refused this {step} ({type(exc).__name__}) and rolled it back, so no "
        "audit event was written either. Try again once the database accepts changes (its "
        "log has the error)"
    )


async def preview(request: Request) -> Response:
    viewer = await require_actor(request)
    form = await request.form()
    await check_csrf(request, form, viewer)
    plane = plane_of(request)
    return_to = _return_to(form)
    action = _text(form, "action", 100)
    targets = [t for t in form.getlist("target") if isinstance(t, str)]
    params = {
        key[len(PARAM_PREFIX) :]: value.strip()
        for key, value in form.multi_items()
        if key.startswith(PARAM_PREFIX) and isinstance(value, str) and value.strip()
    }
    try:
        stored = await plane.powertools.pipeline.preview(
            viewer.actor, action, targets, params, surface="web"
        )
    except ActionError as exc:
        return await _panel(
            request,
            viewer,
            preview=None,
            return_to=return_to,
            error=_message(viewer, exc),
            status_code=exc.status,
        )
    except psycopg.OperationalError:
        raise
    except psycopg.Error as exc:
        return await _panel(
            request,
            viewer,
            preview=None,
            return_to=return_to,
            error=database_refused(exc, "preview"),
            status_code=500,
        )
    view = preview_view(
        plane.display, stored, require_reason_for_all=plane.config.require_reason == "all"
    )
    return await _panel(request, viewer, preview=view, return_to=return_to)


async def confirm(request: Request) -> Response:
    viewer = await require_actor(request)
    form = await request.form()
    await check_csrf(request, form, viewer)
    plane = plane_of(request)
    pipeline = plane.powertools.pipeline
    token = preview_token(form.get("token"))
    reason = _text(form, "reason")
    try:
        if token is None:
            # Not shaped like a token (empty, too long, a NUL...): no preview can match.
            raise PreviewNotFound()
        if "\ufffd" in reason:
            # The form decoder puts U+FFFD where the bytes were not UTF-8: binary posted
            # as a reason. Refused like control characters, before it becomes evidence.
            raise InvalidReason("holds bytes that are not text (not UTF-8)")
        result = await pipeline.execute(viewer.actor, token, reason, surface="web")
    except psycopg.OperationalError:
        raise
    except psycopg.Error as exc:
        stored = await pipeline.get_preview(token) if token else None
        mine = stored is not None and stored.actor_id == viewer.principal.id
        view = None
        if stored is not None and mine and stored.status == "ready":
            view = preview_view(
                plane.display, stored, require_reason_for_all=plane.config.require_reason == "all"
            )
        fallback = back_path(stored.resource_type, stored.targets) if stored and mine else "/"
        return await _panel(
            request,
            viewer,
            preview=view,
            return_to=_return_to(form, fallback),
            error=database_refused(exc, "confirm"),
            reason=reason if view else "",
            status_code=500,
        )
    except ActionError as exc:
        stored = await pipeline.get_preview(token) if token else None
        mine = stored is not None and stored.actor_id == viewer.principal.id
        fallback = back_path(stored.resource_type, stored.targets) if stored and mine else "/"
        # A reason problem leaves the preview ready: show the form again with the text kept.
        view = None
        if (
            stored is not None
            and mine
            and stored.status == "ready"
            and isinstance(exc, REASON_ERRORS)
        ):
            view = preview_view(
                plane.display, stored, require_reason_for_all=plane.config.require_reason == "all"
            )
        return await _panel(
            request,
            viewer,
            preview=view,
            return_to=_return_to(form, fallback),
            error=_message(viewer, exc),
            consumed_event=exc.audit_event_id if isinstance(exc, PreviewConsumed) else None,
            reason=reason if view else "",
            status_code=exc.status,
        )
    location = href(request.scope.get("root_path", ""), f"/actions/results/{result.audit_event_id}")
    if is_htmx(request):
        # htmx would follow a 303 inside the XHR and swap the whole page into the panel;
        # HX-Redirect makes the browser navigate to the result page instead.
        return Response(status_code=200, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


async def result(request: Request) -> Response:
    viewer = await require_actor(request)
    plane = plane_of(request)
    raw = str(request.path_params["event_id"])
    event_id = positive_id(raw)
    event = None
    if event_id is not None:
        async with plane.powertools.db.connection() as conn:
            event = await audit_queries.get_event(conn, event_id)
    if event is None:
        return await not_found(request, viewer, "action result", section="")
    # The operator who acted sees their result; anyone else needs audit access.
    if event.principal_id != viewer.principal.id and not await viewer.can(
        "view_audit", Resource("audit", raw)
    ):
        raise Forbidden("view_audit")
    row = audit_model.audit_row(plane.display, event)
    targets = [str(t) for t in event.detail.get("targets", [])] or [event.resource_id]
    context = {
        "event": row,
        "back": back_path(event.resource_type, targets),
        "audit_query": {"resource_type": event.resource_type, "resource_id": event.resource_id},
        "forensics": event.resource_type in ("cron_entry", "job", "queue", "workflow")
        and not event.resource_id.startswith("bulk:"),
    }
    return await page(request, viewer, "result.html", context, section="")


routes = [
    Route("/actions/preview", preview, methods=["POST"], name="action_preview"),
    Route("/actions/confirm", confirm, methods=["POST"], name="action_confirm"),
    Route("/actions/results/{event_id}", result, methods=["GET"], name="action_result"),
]
