"""The host's auth seam: Django's users, sessions and permissions (deny by default)."""

from oban_powertools.contrib.django import DjangoAuth


class PowertoolsAuth(DjangoAuth):
    """Staff users with ``oban_powertools.<name>`` permissions; see DjangoAuth's rules."""
