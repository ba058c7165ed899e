"""Powertools for workers started with oban's own CLI (``oban start`` and ``oban.toml``).

``oban start`` builds its Oban from ``oban.toml``, which cannot hold Python objects. Name
the runtime by import path in the sections Powertools hooks into, and have the CLI import
this module first (it registers the hooks; ``--cron-modules`` or ``OBAN_CRON_MODULES``
imports modules in the order given, before the instance is built)::

    # oban.toml
    queues = { default = 10 }

    [scheduler]
    powertools = "myapp.ops:powertools"    # a Powertools, a Runtime, or a function

    [stager]
    powertools = "myapp.ops:powertools"    # the same path: one runtime per instance

    $ OBAN_CRON_MODULES=oban_powertools.oban_cli,myapp.workers oban start

Run it from the project's folder. The ``oban`` console script does not put the current
directory on ``sys.path`` (``python -m`` would), so ``myapp`` would not import; this module
puts the project there first, as every ``oban-powertools`` command finds it
(:mod:`.project`: the folder, and the import root install recorded, e.g. ``src/``).

A ``[metrics]`` section with the same ``powertools`` key also turns oban's metrics on
with the stored cron entries in the crontab Oban Web shows.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .errors import PowertoolsError
from .project import HostProject, find_project
from .runtime.instance import install_hooks

try:
    project = find_project()
except PowertoolsError as exc:  # an unreadable manifest: the folder itself still counts
    logging.getLogger(__name__).warning("%s", exc)
    project = HostProject(Path(os.getcwd()).resolve(), None)
project.put_on_sys_path()
install_hooks()
