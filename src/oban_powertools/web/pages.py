"""Rendering a page inside the shared layout, with the viewer's navigation and posture."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import HTMLResponse

from .access import Viewer
from .templating import Templates


def templates_of(request: Request) -> Templates:
    return cast(Templates, request.app.state.templates)


async def page(
    request: Request,
    viewer: Viewer,
    name: str,
    context: Mapping[str, Any],
    *,
    section: str,
    read_only: bool = False,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    full = {
        "section": section,
        "read_only": read_only,
        # No configured bridge, or no view_oban_web: no link to it anywhere.
        "bridge_link": await viewer.sees_bridge(),
        **context,
    }
    return templates_of(request).render(
        request, name, full, viewer=viewer, status_code=status_code, headers=headers
    )


async def not_found(request: Request, viewer: Viewer, what: str, *, section: str) -> HTMLResponse:
    return await page(
        request, viewer, "not_found.html", {"what": what}, section=section, status_code=404
    )
