"""The Django app ``oban_powertools.contrib.django``: permissions and ``oban_worker``."""

from __future__ import annotations

from django.apps import AppConfig


class PowertoolsConfig(AppConfig):
    name = "oban_powertools.contrib.django"
    # Its permissions read ``oban_powertools.pause_cron_entry``, not ``django.…``.
    label = "oban_powertools"
    verbose_name = "oban-powertools"
    default_auto_field = "django.db.models.BigAutoField"
