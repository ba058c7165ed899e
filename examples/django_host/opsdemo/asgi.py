"""ASGI entry point: Django for the site, the control plane below /ops/jobs.

``uvicorn opsdemo.asgi:application`` (from examples/django_host/).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsdemo.settings")

application = get_asgi_application()

# After get_asgi_application(): it sets Django up, which the control plane's seam needs.
from oban_powertools.contrib.django import mount  # noqa: E402

from .powertools_config import powertools  # noqa: E402

# /ops/jobs goes to the control plane (root_path set, so its links stay below the mount);
# the lifespan opens and closes its pool, which Django's handler would not do.
application = mount(application, powertools)
