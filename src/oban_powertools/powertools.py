"""The object a host builds once: configuration, the library's pool, the pipeline, the app."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import psycopg

from .actions.operator import Operator
from .actions.pipeline import Pipeline
from .config import Config
from .db import Database
from .db.schema_gate import SchemaGate

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from .runtime import Runtime

logger = logging.getLogger("oban_powertools")


class Powertools:
    """Entry point for a host application.

    >>> powertools = Powertools(Config(database_url=..., auth=MyAuth(), display=MyDisplay()))
    >>> app.mount("/ops/jobs", powertools.asgi_app())

    The pool opens with ``start()`` (``async with powertools:`` in the host's lifespan), or
    on the first request to the mounted app, since mounted apps get no lifespan events.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.db = Database(
            config.database_url,
            config.prefix,
            max_size=config.pool_max_size,
            timeout=config.pool_timeout,
        )
        self.pipeline = Pipeline(self)
        self.operator = Operator(self.pipeline)
        # Asked at start and by every request until the schema is current (then cached).
        self.schema = SchemaGate(self.db)
        self._started = False

    async def start(self) -> None:
        """Open the pool and check the schema: a schema that is missing or older than
        this release is logged as one warning naming ``oban-powertools migrate`` (the
        host still boots; the pages answer 503 with the same words until it is run)."""
        if not self._started:
            await self.db.open()
            self._started = True
            try:
                await self.schema.check()
            except psycopg.Error as exc:
                logger.warning("oban-powertools: could not check the database schema: %s", exc)

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

    def oban_options(self, **options: Any) -> dict[str, Any]:
        """Keyword arguments that run Powertools' scheduler and queue-state applier inside
        an Oban instance (see :mod:`oban_powertools.runtime`)::

            oban = Oban(pool=pool, queues={"default": 10}, node="web-1",
                        **powertools.oban_options())

        ``scheduler=``, ``stager=`` and ``metrics=`` carry oban's own sub-configs along
        (e.g. ``stager={"interval": 1.0}``; ``metrics=True`` turns oban's metrics on for
        Oban Web, whose cron view then lists the stored entries); the other options go to
        ``Runtime``. Call it once per Oban instance. Raises ``ConfigError`` when oban_pro
        is installed.
        """
        scheduler = options.pop("scheduler", None)
        stager = options.pop("stager", None)
        metrics = options.pop("metrics", None)
        return self.runtime(**options).oban_options(
            scheduler=scheduler, stager=stager, metrics=metrics
        )

    def runtime(self, **options: Any) -> Runtime:
        """A new :class:`~oban_powertools.runtime.Runtime` for one Oban instance (what
        :meth:`oban_options` wires in; an oban.toml section naming this object gets one
        with the default options)."""
        from .runtime import Runtime

        return Runtime(self, **options)
