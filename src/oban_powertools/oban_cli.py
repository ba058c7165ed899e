"""Powertools for workers started with oban's own CLI (``oban start`` and ``oban.toml``).

``oban start`` builds its Oban from ``oban.toml``, which cannot hold Python objects. Name
the runtime by import path in the sections Powertools hooks into, and have the CLI import
this module first (it registers the hooks; ``--cron-modules`` or ``OBAN_CRON_MODULES``
imports modules before the instance is built)::

    # oban.toml
    queues = { default = 10 }

    [scheduler]
    powertools = "myapp.ops:powertools"    # a Powertools, a Runtime, or a function

    [stager]
    powertools = "myapp.ops:powertools"    # the same path: one runtime per instance

    $ OBAN_CRON_MODULES=oban_powertools.oban_cli,myapp.workers oban start

A ``[metrics]`` section with the same ``powertools`` key also turns oban's metrics on
with the stored cron entries in the crontab Oban Web shows.
"""

from __future__ import annotations

from . import oban_hooks

oban_hooks.install()
