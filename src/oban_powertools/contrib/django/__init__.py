"""oban-powertools in a Django project: the mount, the auth seam, the worker command.

One recipe (``docs/hosts/django.md`` has it step by step; ``oban-powertools install``
writes it):

1. ``INSTALLED_APPS += ["oban_powertools.contrib.django"]``: the permissions
   (``oban_powertools.view_cron``, ``oban_powertools.pause_cron_entry`` ...) that
   ``manage.py migrate`` creates, and ``manage.py oban_worker``.
2. The auth seam: ``Config(auth=DjangoAuth(), ...)`` (:mod:`.auth`): Django's session
   cookie → the ``django.contrib.auth`` user; Django permissions; staff only.
3. ``asgi.py``::

       application = get_asgi_application()  # first: it sets Django up

       from oban_powertools.contrib.django import mount
       from mysite.powertools_config import powertools

       application = mount(application, powertools)  # /ops/jobs, with lifespan

4. The worker: ``python manage.py oban_worker``, configured by
   ``OBAN_POWERTOOLS = {"POWERTOOLS": "mysite.powertools_config:powertools",
   "QUEUES": {"default": 10}}`` in settings.

Importing this package does not import Django; ``DjangoAuth()`` without Django installed
raises a ConfigError naming the ``oban-powertools[django]`` extra.
"""

from .asgi import PrefixDispatcher, mount
from .auth import DjangoAuth, permission_names

__all__ = ["DjangoAuth", "PrefixDispatcher", "mount", "permission_names"]
