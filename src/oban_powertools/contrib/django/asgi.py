"""The project's ASGI application with the control plane below ``/ops/jobs``.

Django has no ``mount``, so :func:`mount` wraps the project's ASGI application in a
dispatcher: requests below the prefix reach the control plane with ``root_path`` set to
the prefix (its links and redirects stay below it), everything else reaches Django.
Django's ASGI handler refuses lifespan events, so the dispatcher answers them itself and
opens the library's pool at start-up and closes it at shutdown. Nothing here imports
Django: the dispatcher is plain ASGI.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from ...powertools import Powertools

log = logging.getLogger("oban_powertools.contrib.django")


class PrefixDispatcher:
    """Send requests below ``prefix`` to ``mounted``, everything else to ``fallback``.

    With ``powertools`` given, lifespan events start and stop it and never reach the
    fallback (Django's handler raises on them); without, they go to the fallback.
    """

    def __init__(
        self,
        fallback: ASGIApp,
        mounted: ASGIApp,
        prefix: str,
        *,
        powertools: Powertools | None = None,
    ) -> None:
        if not prefix.startswith("/") or prefix.endswith("/") or "//" in prefix:
            raise ValueError(f"prefix must look like '/ops/jobs', got {prefix!r}")
        self.fallback = fallback
        self.mounted = mounted
        self.prefix = prefix
        self.powertools = powertools

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            if path == self.prefix or path.startswith(self.prefix + "/"):
                root_path = scope.get("root_path", "") + self.prefix
                # Like Starlette's Mount: the path keeps the prefix, root_path names it.
                child = dict(scope, root_path=root_path)
                await self.mounted(child, receive, send)
                return
        elif scope["type"] == "lifespan" and self.powertools is not None:
            await self._lifespan(self.powertools, receive, send)
            return
        await self.fallback(scope, receive, send)

    async def _lifespan(self, powertools: Powertools, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await powertools.start()
                except Exception as exc:
                    # The server then refuses to start, as it would for a failing FastAPI
                    # lifespan: better than serving a console that cannot reach its tables.
                    log.exception("oban-powertools could not open its pool")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await powertools.stop()
                except Exception as exc:
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return


def mount(django_app: ASGIApp, powertools: Powertools, prefix: str = "/ops/jobs") -> ASGIApp:
    """Django's ASGI application with the control plane below ``prefix``.

    Lifespan events open and close ``powertools``' pool; run the server with lifespan
    on (uvicorn's default ``--lifespan auto`` is enough).
    """
    return PrefixDispatcher(django_app, powertools.asgi_app(), prefix, powertools=powertools)
