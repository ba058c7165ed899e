"""The host's oban-powertools wiring: one Config, one Powertools."""

from __future__ import annotations

from oban_powertools import Config, Powertools

from . import settings
from .ops_auth import PowertoolsAuth
from .ops_display import PowertoolsDisplay


def build_config() -> Config:
    return Config(
        database_url=settings.DATABASE_URL,
        auth=PowertoolsAuth(),
        display=PowertoolsDisplay(),
        bridge_url=settings.BRIDGE_URL,
        login_url="/login",
        # One secret for every web process, so a form rendered by one is accepted by another.
        csrf_secret=settings.CSRF_SECRET,
    )


powertools = Powertools(build_config())
