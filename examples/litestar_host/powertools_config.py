"""The host's oban-powertools wiring: one Config, one Powertools, for web and worker."""

from __future__ import annotations

from oban_powertools import Config, Powertools

from . import settings
from .ops_auth import PowertoolsAuth
from .ops_display import PowertoolsDisplay


def build_config(database_url: str | None = None) -> Config:
    return Config(
        database_url=database_url or settings.DATABASE_URL,
        auth=PowertoolsAuth(),
        display=PowertoolsDisplay(),
        login_url="/login",
        # One secret for every web process, so a form rendered by one is accepted by another.
        csrf_secret=settings.CSRF_SECRET,
    )


powertools = Powertools(build_config())
