"""The control plane's permissions, as Django permissions of a model without a table.

``manage.py migrate`` creates one permission per page and action the library knows
(``oban_powertools.view_cron``, ``oban_powertools.pause_cron_entry`` ...), so they can be
granted to users and groups in Django's admin. The app has no migrations on purpose: the
list follows the installed library, and the model never has a table.
"""

from __future__ import annotations

from django.db import models

from .auth import permission_names


class ControlPlane(models.Model):
    class Meta:
        managed = False
        default_permissions = ()
        verbose_name = "control plane"
        permissions = [(name, "Can " + name.replace("_", " ")) for name in permission_names()]
