"""Mounting the control plane in a Litestar app: one plugin, for the mount and the lifespan.

::

    from litestar import Litestar
    from oban_powertools.contrib.litestar import PowertoolsPlugin

    from myapp.powertools_config import powertools

    app = Litestar(route_handlers=[...], plugins=[PowertoolsPlugin(powertools)])

The plugin mounts ``powertools.asgi_app()`` at ``/ops/jobs`` and runs the library's pool
with the app: it opens first in Litestar's lifespan (before the host's own lifespan
managers and ``on_startup`` hooks) and closes last (after the host's ``on_shutdown``
hooks), so all of the host's start-up and shut-down code may use ``powertools``. Why not
the two obvious ways:

* ``asgi("/ops/jobs", is_mount=True)(powertools.asgi_app())``: Litestar hands a mounted
  app the path *below* the mount with a slash appended (``/ops/jobs/cron`` arrives as
  ``/cron/``) and leaves ``root_path`` as the server set it. The control plane builds its
  links from ``root_path``, as Starlette's ``Mount`` sets it, so every link would point
  outside the mount. The plugin's mount gives it Starlette's scope instead: ``root_path``
  ending in the mount path and ``path`` the full request path.
* a Starlette router in front of the Litestar app: the lifespan events then reach the
  router, never Litestar, so the host's start-up hooks silently do not run.

Litestar's own middleware still runs for the mount: session or authentication middleware
fills ``scope["session"]`` / ``scope["user"]``, which the auth seam reads from the Starlette
request it gets (``request.session``, ``request.user``). Litestar's CSRF middleware is
told to skip the mount, whose forms carry the control plane's own token (checked against
the principal and the request's origin on every state-changing request).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

# Starlette's ASGI types, the control plane's; imported at run time because Litestar reads
# the mount handler's annotations to validate it.
from starlette.types import Receive, Scope, Send

from ..errors import ConfigError

try:
    from litestar import Litestar
    from litestar.config.app import AppConfig
    from litestar.handlers import ASGIRouteHandler, asgi
    from litestar.plugins import InitPlugin
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ConfigError(
        "litestar",
        f"is not installed ({exc}), and oban_powertools.contrib.litestar mounts the control "
        "plane in a Litestar app",
        "Install the extra: pip install 'oban-powertools[litestar]'",
    ) from exc

if TYPE_CHECKING:
    from ..powertools import Powertools

__all__ = ["MOUNT_PATH", "PowertoolsPlugin", "mounted_scope"]

MOUNT_PATH = "/ops/jobs"
HANDLER_NAME = "oban_powertools"


def _check_path(path: str) -> str:
    if not path.startswith("/") or path.endswith("/") or "//" in path:
        raise ConfigError(
            "PowertoolsPlugin(path=...)",
            f"{path!r} is not a mount path",
            "Pass a path like '/ops/jobs': a leading slash, no trailing slash",
        )
    return path


def _requested_path(scope: Scope) -> str | None:
    # Litestar rewrites scope["path"] but keeps the server's raw_path (percent-encoded).
    raw = scope.get("raw_path")
    if not isinstance(raw, bytes) or not raw:
        return None
    return unquote(raw.decode("latin-1"))


def mounted_scope(scope: Scope, mount_path: str) -> dict[str, Any]:
    """The scope Starlette's ``Mount(mount_path)`` would give, from the one Litestar gives.

    Litestar's mount leaves ``root_path`` as the server set it and sets ``path`` to what is
    below the mount, with a slash appended; Starlette's keeps ``path`` whole and appends
    the mount to ``root_path``, which is what the control plane's links are built from.
    """
    server_root: str = scope.get("root_path", "")
    root = server_root + mount_path
    requested = _requested_path(scope)
    if requested is not None and (requested == root or requested.startswith(root + "/")):
        path = requested
    else:
        # No usable raw_path: rebuild from Litestar's path, without the slash it added.
        below: str = scope["path"]
        path = root + (below[:-1] if below != "/" and below.endswith("/") else below)
    child = dict(scope)
    child["path"] = path
    child["root_path"] = root
    child.setdefault("app_root_path", server_root)
    return child


def _mount(powertools: Powertools, path: str, csrf_opt_key: str) -> ASGIRouteHandler:
    control_plane = powertools.asgi_app()

    async def oban_powertools(scope: Scope, receive: Receive, send: Send) -> None:
        await control_plane(mounted_scope(scope, path), receive, send)

    return asgi(
        path,
        is_mount=True,
        copy_scope=True,
        name=HANDLER_NAME,
        # The control plane checks its own CSRF token and the origin on every POST.
        opt={csrf_opt_key: True},
    )(oban_powertools)


class PowertoolsPlugin(InitPlugin):
    """Mounts the control plane at ``path`` and runs ``async with powertools:`` with the app."""

    __slots__ = ("path", "powertools")

    def __init__(self, powertools: Powertools, *, path: str = MOUNT_PATH) -> None:
        self.powertools = powertools
        self.path = _check_path(path)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        csrf = app_config.csrf_config
        csrf_opt_key = csrf.exclude_from_csrf_key if csrf is not None else "exclude_from_csrf"
        app_config.route_handlers.append(_mount(self.powertools, self.path, csrf_opt_key))
        # Litestar enters its lifespan managers in order before the on_startup hooks, and
        # runs the on_shutdown hooks only after every manager has exited. Opening in the
        # first manager and closing in the last shutdown hook keeps the pool open for all
        # of the host's code; Litestar registers the shutdown hooks before it enters any
        # manager, so a failed start-up closes the pool too.
        app_config.lifespan.insert(0, self._open)
        app_config.on_shutdown.append(self._close)
        return app_config

    @asynccontextmanager
    async def _open(self, app: Litestar) -> AsyncIterator[None]:
        await self.powertools.start()
        yield

    async def _close(self) -> None:
        await self.powertools.stop()
