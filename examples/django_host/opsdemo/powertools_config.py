"""The host's oban-powertools wiring: one Config, one Powertools.

Imported by asgi.py, by ``manage.py oban_worker`` (settings.OBAN_POWERTOOLS) and by the
``oban-powertools`` CLI (``--config opsdemo.powertools_config:build_config``), which sets
Django up itself through the seam.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.utils.crypto import salted_hmac

from oban_powertools import Config, Powertools

from .ops_auth import PowertoolsAuth
from .ops_display import PowertoolsDisplay

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsdemo.settings")


def build_config() -> Config:
    return Config(
        database_url=settings.DATABASE_URL,
        auth=PowertoolsAuth(),
        display=PowertoolsDisplay(),
        # Django's sign-in page; it sends the operator back to ?next= afterwards.
        login_url=settings.LOGIN_URL,
        # One secret for every web process, so a form one renders another accepts.
        csrf_secret=salted_hmac("oban_powertools.csrf", "csrf", algorithm="sha256").hexdigest(),
    )


powertools = Powertools(build_config())
