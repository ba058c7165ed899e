# ==========================================================================================
#  STARTER: THE HOST OWNS THIS FILE.
#
#  Written once by `oban-powertools install`, which never overwrites it after you edit it.
#  `oban-powertools doctor` loads `build_config` from here (see .oban-powertools-install.json).
# ==========================================================================================
"""How this Django project wires oban-powertools: one Config, one Powertools.

``asgi.py`` mounts the control plane at /ops/jobs (``mount(application, powertools)``,
which also opens and closes the library's pool with the server's lifespan), and
``python manage.py oban_worker`` runs the worker node that ``settings.OBAN_POWERTOOLS``
describes.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.utils.crypto import salted_hmac

from oban_powertools import Config, Powertools

from .ops_auth import PowertoolsAuth
from .ops_display import PowertoolsDisplay

# The oban-powertools CLI imports this module without manage.py: name the settings.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", f"{__package__}.settings")


def build_config() -> Config:
    """The library's settings; a missing or invalid one fails here, at start-up."""
    return Config(
        database_url=os.environ.get("DATABASE_URL", ""),
        auth=PowertoolsAuth(),
        display=PowertoolsDisplay(),
        prefix=os.environ.get("OBAN_POWERTOOLS_PREFIX", "public"),
        # The Oban Web dashboard's address turns on the read-only bridge at /ops/jobs/oban.
        bridge_url=os.environ.get("OBAN_POWERTOOLS_BRIDGE_URL") or None,
        # Anonymous visitors go to Django's sign-in page, which sends them back (?next=).
        login_url=settings.LOGIN_URL,
        # Every web process signs the console's forms alike, with a key from SECRET_KEY.
        csrf_secret=salted_hmac("oban_powertools.csrf", "csrf", algorithm="sha256").hexdigest(),
    )


powertools = Powertools(build_config())
