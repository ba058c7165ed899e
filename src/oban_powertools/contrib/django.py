"""Mounting the control plane in a Django project, through ASGI.

Django has no ``mount``, so the project's ``asgi.py`` routes by path prefix::

    # myproject/asgi.py
    from django.core.asgi import get_asgi_application

    django_app = get_asgi_application()  # first: it sets Django up before other imports

    from oban_powertools.contrib.django import mount
    from myproject.ops import powertools

    application = mount(django_app, powertools, prefix="/ops/jobs")

Requests below the prefix reach the control plane with ``root_path`` set to the prefix,
so its links and redirects stay below it; everything else, and lifespan events, go to
Django. The auth seam receives a Starlette ``Request``: read Django's session cookie from
``request.cookies[settings.SESSION_COOKIE_NAME]`` with ``SessionStore`` (wrapped in
``asgiref.sync.sync_to_async``), as docs/policy-integration.md shows. This module imports
nothing from Django, so it works with any version that serves ASGI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from ..powertools import Powertools


class PrefixDispatcher:
    """Send requests below ``prefix`` to ``mounted``, everything else to ``fallback``."""

    def __init__(self, fallback: ASGIApp, mounted: ASGIApp, prefix: str) -> None:
        if not prefix.startswith("/") or prefix.endswith("/") or "//" in prefix:
            raise ValueError(f"prefix must look like '/ops/jobs', got {prefix!r}")
        self.fallback = fallback
        self.mounted = mounted
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            if path == self.prefix or path.startswith(self.prefix + "/"):
                root_path = scope.get("root_path", "") + self.prefix
                # Like Starlette's Mount: the path keeps the prefix, root_path names it.
                child = dict(scope, root_path=root_path)
                await self.mounted(child, receive, send)
                return
        await self.fallback(scope, receive, send)


def mount(django_app: ASGIApp, powertools: Powertools, prefix: str = "/ops/jobs") -> ASGIApp:
    """Django's ASGI application with the control plane below ``prefix``."""
    return PrefixDispatcher(django_app, powertools.asgi_app(), prefix)
