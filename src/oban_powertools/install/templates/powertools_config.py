# ==========================================================================================
#  STARTER: THE HOST OWNS THIS FILE.
#
#  Written once by `oban-powertools install`, which never overwrites it after you edit it.
#  `oban-powertools doctor` loads `build_config` from here (see .oban-powertools-install.json).
# ==========================================================================================
"""How this app wires oban-powertools: one Config, one Powertools, a lifespan for its pool.

Mount the control plane and open its pool with the app::

    app = FastAPI(lifespan=powertools_lifespan)
    app.mount("/ops/jobs", powertools.asgi_app())

If your app has its own lifespan, put ``async with powertools:`` inside it instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from oban_powertools import Config, Powertools

from .ops_auth import PowertoolsAuth
from .ops_display import PowertoolsDisplay


def build_config() -> Config:
    """The library's settings; a missing or invalid one fails here, at start-up."""
    return Config(
        database_url=os.environ.get("DATABASE_URL", ""),
        auth=PowertoolsAuth(),
        display=PowertoolsDisplay(),
        prefix=os.environ.get("OBAN_POWERTOOLS_PREFIX", "public"),
        # The Oban Web dashboard's address turns on the read-only bridge at /ops/jobs/oban.
        bridge_url=os.environ.get("OBAN_POWERTOOLS_BRIDGE_URL") or None,
        # One secret for every web process (16+ characters), so a form one renders another
        # accepts; unset, each process draws its own and forms reload after a restart.
        csrf_secret=os.environ.get("OBAN_POWERTOOLS_CSRF_SECRET") or None,
        # trusted_origins=("https://ops.example.com",),  # other origins whose pages may post
        # stuck_after_seconds=15 * 60,  # when the overview lists an executing job as stuck
        # login_url="/login",  # send anonymous visitors here instead of answering 401
    )


powertools = Powertools(build_config())


@asynccontextmanager
async def powertools_lifespan(app: Any) -> AsyncIterator[None]:
    """Opens the library's pool with the app: a mounted app gets no lifespan of its own."""
    async with powertools:
        yield
