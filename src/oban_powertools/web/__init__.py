"""The native control plane: server-rendered pages the host mounts (e.g. at ``/ops/jobs``).

>>> app.mount("/ops/jobs", powertools.asgi_app())

Pages: ``/`` overview, ``/cron``, ``/queues``, ``/jobs``, ``/audit``, ``/forensics``, and
``/oban`` (the read-only Oban Web bridge, only when ``Config.bridge_url`` is set).
"""

from .app import create_app

__all__ = ["create_app"]
