"""The object a host builds once: configuration, the library's pool, the pipeline, the app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .actions.operator import Operator
from .actions.pipeline import Pipeline
from .config import Config
from .db import Database

if TYPE_CHECKING:
    from starlette.types import ASGIApp


class Powertools:
    """Entry point for a host application.

    >>> powertools = Powertools(Config(database_url=..., auth=MyAuth(), display=MyDisplay()))
    >>> app.mount("/ops/jobs", powertools.asgi_app())

    The pool opens lazily with the ASGI app's lifespan, or explicitly with ``start()``.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.db = Database(config.database_url, config.prefix, max_size=config.pool_max_size)
        self.pipeline = Pipeline(self)
        self.operator = Operator(self.pipeline)
        self._started = False

    async def start(self) -> None:
        if not self._started:
            await self.db.open()
            self._started = True

    async def stop(self) -> None:
        if self._started:
            await self.db.close()
            self._started = False

    async def __aenter__(self) -> Powertools:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    def asgi_app(self) -> ASGIApp:
        """The control plane as an ASGI app, to mount below the host's ``/ops/jobs``."""
        from .web import create_app

        return create_app(self)
