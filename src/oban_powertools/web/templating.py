"""Jinja2 (autoescape on) and the helpers templates share: links below the mount, times.

Templates get values that already passed the display policy; they only format them.
Links are built from ``request.scope["root_path"]`` so the pages work under any mount path.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context
from jinja2.runtime import Context
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..read_models.common import Count, ago, duration
from .access import Viewer
from .charts import wait_text

try:
    ASSET_VERSION = version("oban-powertools")
except PackageNotFoundError:  # running from a source tree without metadata
    ASSET_VERSION = "dev"

NAVIGATION = (
    ("overview", "Overview", "/"),
    ("cron", "Cron", "/cron"),
    ("queues", "Queues", "/queues"),
    ("jobs", "Jobs", "/jobs"),
    ("workflows", "Workflows", "/workflows"),
    ("audit", "Audit", "/audit"),
    ("forensics", "Forensics", "/forensics"),
)


def href(root: str, path: str, query: Mapping[str, Any] | None = None) -> str:
    """``path`` (relative to the mount, starting with "/") below ``root``, with a query."""
    url = root.rstrip("/") + path
    pairs = {k: v for k, v in (query or {}).items() if v not in (None, "")}
    return f"{url}?{urlencode(pairs)}" if pairs else url


@pass_context
def url(context: Context, path: str, **query: Any) -> str:
    return href(context["root"], path, query)


@pass_context
def static(context: Context, name: str) -> str:
    return href(context["root"], f"/static/{name}", {"v": ASSET_VERSION})


def segment(value: object) -> str:
    """One path segment, percent-encoded (names may hold characters a URL path cannot)."""
    return quote(str(value), safe="")


def timestamp(value: datetime | None) -> str:
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def relative(value: datetime | None) -> str:
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return ago(value, datetime.now(UTC))


def count(value: Count | None) -> str:
    return "—" if value is None else str(value)


def build_environment() -> Environment:
    env = Environment(
        loader=PackageLoader("oban_powertools.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(url=url, static=static, navigation=NAVIGATION)
    env.filters.update(
        ts=timestamp,
        iso=iso,
        ago=relative,
        count=count,
        segment=segment,
        duration=duration,
        wait=wait_text,
    )
    return env


class Templates:
    def __init__(self) -> None:
        self.env = build_environment()

    def render(
        self,
        request: Request,
        name: str,
        context: Mapping[str, Any],
        *,
        viewer: Viewer | None = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        template = self.env.get_template(name)
        html = template.render(self.base_context(request, viewer) | dict(context))
        return HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))

    def base_context(self, request: Request, viewer: Viewer | None) -> dict[str, Any]:
        root = request.scope.get("root_path", "")
        query = request.url.query
        path = request.url.path
        local = path[len(root) :] if root and path.startswith(root) else path
        return {
            "request": request,
            "root": root,
            "viewer": viewer,
            "csrf_token": viewer.csrf_token if viewer else "",
            "current_url": path + (f"?{query}" if query else ""),
            # The same location relative to the mount: where an action returns to.
            "here": (local or "/") + (f"?{query}" if query else ""),
            "section": "",
            "read_only": False,
            "bridge_link": False,
            "posture": "Audited action",
        }


def is_poll(request: Request, target: str = "live") -> bool:
    """An htmx polling request for the page's live fragment."""
    return (
        request.headers.get("hx-request") == "true" and request.headers.get("hx-target") == target
    )


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"
