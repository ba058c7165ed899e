"""The control plane's ASGI app: routes, error pages, security headers, lazy start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from .access import CsrfRejected, Forbidden, NotSignedIn, Plane, current_viewer
from .routes import actions, api, audit, bridge, cron, forensics, jobs, overview, queues
from .security import SecurityHeaders
from .templating import Templates, is_htmx

if TYPE_CHECKING:
    from ..powertools import Powertools

STATIC = Path(__file__).parent / "static"


class ControlPlane(Starlette):
    """A Starlette app whose every response, error pages included, gets security headers."""

    def build_middleware_stack(self) -> ASGIApp:
        # Outside ServerErrorMiddleware, so even a 500 carries the headers.
        return SecurityHeaders(super().build_middleware_stack())


def create_app(powertools: Powertools) -> Starlette:
    plane = Plane(powertools)
    templates = Templates()

    routes: list[BaseRoute] = [
        *overview.routes,
        *cron.routes,
        *queues.routes,
        *jobs.routes,
        *audit.routes,
        *forensics.routes,
        *actions.routes,
        *api.routes,
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    if plane.bridge_configured:
        # Without a configured dashboard the route does not exist at all (404).
        routes.extend(bridge.routes)

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
        return templates.render(
            request,
            "http_error.html",
            {"status": status, "detail": detail},
            status_code=status,
            headers=headers,
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
        },
        lifespan=lifespan,
    )
    app.state.plane = plane
    app.state.templates = templates
    return app
