# ==========================================================================================
#  STARTER: THE HOST OWNS THIS FILE.
#
#  Written once by `oban-powertools install`, which never overwrites it after you edit it.
#  As generated it DENIES BY DEFAULT on Django's own users: only active staff users who
#  hold an `oban_powertools.<name>` permission for the page or action get in (superusers
#  hold them all). Grant them to users or groups in Django's admin.
# ==========================================================================================
"""The auth seam for oban-powertools, on ``django.contrib.auth``.

``DjangoAuth`` reads the user from Django's session cookie, asks ``user.has_perm`` for
``oban_powertools.view_cron``, ``oban_powertools.pause_cron_entry`` and so on (created
by ``manage.py migrate`` with ``oban_powertools.contrib.django`` in INSTALLED_APPS),
records the username and full name in the audit log, and maps
``oban-powertools action --actor USERNAME`` to that user. Change a rule by passing options
or overriding one method, for example::

    def __init__(self) -> None:
        # Let non-staff users in, and give running a cron entry its own permission.
        super().__init__(require_staff=False, permissions={"run_cron_entry": "ops.run_now"})
"""

from __future__ import annotations

from oban_powertools.contrib.django import DjangoAuth


class PowertoolsAuth(DjangoAuth):
    """Django users and permissions; see ``DjangoAuth`` for every rule."""
