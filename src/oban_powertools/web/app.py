"""The control plane's ASGI app: routes, error pages, security headers, lazy start.

Errors have pages of their own, in the shared layout for people and as JSON below
``/api``: a database that is down or restarting answers 503 with what happened and what
to do (the pages work again by themselves once it is back), anything unexpected a 500 that
shows no detail. A database whose schema is missing or older than this release answers
503 to signed-in viewers with the migrations to run (:class:`SchemaGate`), until
``oban-powertools migrate`` has run; then the pages work without a restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import psycopg
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ExtraNotInstalled
from ..seams import resolve
from .access import CsrfRejected, Forbidden, NotSignedIn, Plane, current_viewer
from .routes import (
    actions,
    api,
    audit,
    composites,
    cron,
    forensics,
    jobs,
    overview,
    queues,
    workflows,
)
from .security import RequestLimits, SecurityHeaders, is_api_path, local_path
from .templating import Templates, is_htmx, is_poll

if TYPE_CHECKING:
    from ..powertools import Powertools

STATIC = Path(__file__).parent / "static"


class ControlPlane(Starlette):
    """A Starlette app whose every response, error pages included, gets security headers."""

    def build_middleware_stack(self) -> ASGIApp:
        # Outside ServerErrorMiddleware, so even a 500 carries the headers; the limits sit
        # inside them so a refused request gets the headers too.
        return SecurityHeaders(RequestLimits(super().build_middleware_stack()))


RETRY_AFTER = "5"


def unavailable_reason(exc: BaseException, *, mutation: bool) -> tuple[str, str]:
    """What an operator is told when the database failed a request (headline, why).

    A state-changing request that lost its connection may have lost it during COMMIT, so
    for those nothing is claimed about the outcome (the page points to the audit log).
    """
    if isinstance(exc, psycopg.errors.TransactionRollback):
        return (
            "The database could not complete this request.",
            "It conflicted with another change in progress and was rolled back. "
            "Try again in a moment.",
        )
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return (
            "The database took too long to answer.",
            "The request was cancelled. Try again in a moment.",
        )
    outcome = "" if mutation else "Nothing could be read or changed. "
    return (
        "The database is not reachable right now.",
        f"{outcome}The console works again by itself once the database is back: try again "
        "in a moment.",
    )


def api_error(status: int, code: str, message: str, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


class SchemaGate:
    """Pure ASGI middleware: a 503 naming the migrations to run while the schema is not
    current (a healthy request pays one attribute read: the answer is cached).

    Anonymous visitors pass through to the usual sign-in answer, which reads none of the
    library's tables. A database that cannot be asked at all gets the app's own "database
    unavailable" answer here, rather than a second wait for it in the handler.
    """

    def __init__(
        self,
        app: ASGIApp,
        plane: Plane,
        templates: Templates,
        unavailable: Callable[[Request, Exception], Awaitable[Response]],
    ) -> None:
        self.app = app
        self.plane = plane
        self.templates = templates
        self.unavailable = unavailable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate = self.plane.powertools.schema
        if scope["type"] != "http" or gate.current or local_path(scope).startswith("/static/"):
            await self.app(scope, receive, send)
            return
        response = await self._refusal(Request(scope, receive))
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    async def _refusal(self, request: Request) -> Response | None:
        plane = self.plane
        try:
            await plane.ensure_started()
            problem = await plane.powertools.schema.check()
        except psycopg.OperationalError as exc:
            return await self.unavailable(request, exc)
        if problem is None:
            return None
        if await resolve(plane.config.auth.current_actor(request)) is None:
            return None
        headers = {"retry-after": RETRY_AFTER}
        if is_api_path(request.scope):
            message = f"{problem.describe()}. Run `{problem.command}`."
            return api_error(503, "schema_not_current", message, headers)
        if is_poll(request):
            return Response(status_code=503, headers={**headers, "HX-Reswap": "none"})
        name = "_schema_not_current.html" if is_htmx(request) else "schema_not_current.html"
        return self.templates.render(
            request, name, {"problem": problem}, status_code=503, headers=headers
        )


def create_app(powertools: Powertools) -> Starlette:
    plane = Plane(powertools)
    templates = Templates()

    routes: list[BaseRoute] = [
        *overview.routes,
        *cron.routes,
        *queues.routes,
        *jobs.routes,
        *workflows.routes,
        *composites.routes,
        *audit.routes,
        *forensics.routes,
        *actions.routes,
        *api.routes,
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    if plane.bridge_configured:
        # Without a configured dashboard the route does not exist at all (404), and its
        # HTTP client (the optional [bridge] extra) is never imported.
        from .routes import bridge

        routes.extend(bridge.routes)
    try:
        # With the [prometheus] extra only (else no /metrics route at all, 404).
        from .metrics import process_metrics
        from .routes import metrics
    except ExtraNotInstalled:
        pass
    else:
        # This process's job and action telemetry is recorded from now on (once per
        # process), so the first scrape has history.
        process_metrics()
        routes.extend(metrics.routes)

    async def not_signed_in(request: Request, exc: Exception) -> Response:
        login = plane.config.login_url
        if login:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            sep = "&" if "?" in login else "?"
            location = f"{login}{sep}{urlencode({'next': target})}"
            if is_htmx(request):
                return Response(status_code=401, headers={"HX-Redirect": location})
            return RedirectResponse(location, status_code=303)
        return templates.render(request, "signed_out.html", {}, status_code=401)

    async def forbidden(request: Request, exc: Exception) -> Response:
        viewer = await current_viewer(request)
        return templates.render(request, "forbidden.html", {}, viewer=viewer, status_code=403)

    async def csrf_rejected(request: Request, exc: Exception) -> Response:
        why = exc.why if isinstance(exc, CsrfRejected) else "the request could not be verified"
        viewer = await current_viewer(request)
        return templates.render(
            request, "csrf_rejected.html", {"why": why}, viewer=viewer, status_code=403
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
        detail = exc.detail if isinstance(exc, HTTPException) else "Error"
        if is_api_path(request.scope):
            code = "not_found" if status == 404 else f"http_{status}"
            return api_error(status, code, str(detail), headers)
        return templates.render(
            request,
            "http_error.html",
            {"status": status, "detail": detail},
            status_code=status,
            headers=headers,
        )

    async def database_unavailable(request: Request, exc: Exception) -> Response:
        # No viewer here: resolving one may need the database that just failed.
        mutation = request.method == "POST"
        headline, why = unavailable_reason(exc, mutation=mutation)
        headers = {"retry-after": RETRY_AFTER}
        if is_api_path(request.scope):
            message = f"{headline} {why}"
            if mutation:
                message += (
                    " An action is applied exactly when its audit event exists: check the "
                    "audit log before repeating it."
                )
            return api_error(503, "database_unavailable", message, headers)
        if is_poll(request):
            # Keep what the page shows and let its polling go on: it recovers by itself.
            return Response(status_code=503, headers={**headers, "HX-Reswap": "none"})
        context = {"headline": headline, "why": why, "mutation": mutation}
        name = "_unavailable.html" if is_htmx(request) else "unavailable.html"
        return templates.render(request, name, context, status_code=503, headers=headers)

    async def server_error(request: Request, exc: Exception) -> Response:
        # Starlette still re-raises the exception to the server, which logs it; the
        # response says nothing about it.
        if is_api_path(request.scope):
            return api_error(500, "server_error", "the request failed on the server", {})
        return templates.render(
            request, "server_error.html", {"mutation": request.method == "POST"}, status_code=500
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Only when run on its own: a mounted app gets no lifespan and starts lazily.
        await plane.ensure_started()
        try:
            yield
        finally:
            await powertools.stop()

    app = ControlPlane(
        routes=routes,
        exception_handlers={
            NotSignedIn: not_signed_in,
            Forbidden: forbidden,
            CsrfRejected: csrf_rejected,
            HTTPException: http_error,
            # PoolTimeout and PoolClosed are OperationalErrors too.
            psycopg.OperationalError: database_unavailable,
            Exception: server_error,
        },
        lifespan=lifespan,
        middleware=[
            Middleware(
                SchemaGate, plane=plane, templates=templates, unavailable=database_unavailable
            )
        ],
    )
    app.state.plane = plane
    app.state.templates = templates
    return app
