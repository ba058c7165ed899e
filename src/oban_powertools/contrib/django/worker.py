"""``manage.py oban_worker``: one oban node with oban-powertools' runtime inside.

Settings (all but ``POWERTOOLS`` optional)::

    OBAN_POWERTOOLS = {
        "POWERTOOLS": "mysite.powertools_config:powertools",  # a Powertools, Config or factory
        "QUEUES": {"default": 10},                             # oban's queues for this node
        "IMPORTS": ["mysite.jobs"],       # imported first: they declare workers and cron entries
        "OBAN": {"shutdown_grace_period": 15.0},               # more Oban(...) options
    }

The node runs ``Oban(pool=..., queues=..., **powertools.oban_options())``, so the cron
scheduler and the stored queue decisions run in it, and stops cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...config import Config, load_object
from ...errors import ConfigError
from ...powertools import Powertools

log = logging.getLogger("oban_powertools.worker")
SETTING = "OBAN_POWERTOOLS"
EXAMPLE = (
    'OBAN_POWERTOOLS = {"POWERTOOLS": "mysite.powertools_config:powertools", '
    '"QUEUES": {"default": 10}}'
)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    powertools: Powertools
    queues: dict[str, Any]
    imports: tuple[str, ...] = ()
    oban: Mapping[str, Any] = field(default_factory=dict)


def _powertools(path: object) -> Powertools:
    where = f"{SETTING}['POWERTOOLS']"
    if not isinstance(path, str) or not path:
        raise ConfigError(where, "not set", f"Add to settings.py: {EXAMPLE}")
    found = load_object(path, where)
    if callable(found) and not isinstance(found, Powertools | Config):
        found = found()
    if isinstance(found, Config):
        found = Powertools(found)
    if not isinstance(found, Powertools):
        raise ConfigError(
            where,
            f"{path} is a {type(found).__name__}, not a Powertools or Config",
            "Point it at the `powertools` of your powertools_config module.",
        )
    return found


def parse_queues(text: str) -> dict[str, int]:
    """``default=10,mailers=5`` → ``{"default": 10, "mailers": 5}``."""
    queues: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, limit = part.partition("=")
        if not sep or not name.strip() or not limit.strip().isdigit() or int(limit) < 1:
            raise ConfigError(
                "--queues",
                f"{part!r} is not NAME=LIMIT",
                "Write e.g. --queues default=10,mailers=5.",
            )
        queues[name.strip()] = int(limit)
    return queues


def from_django_settings(queues: str | None = None) -> WorkerSettings:
    """The worker's settings from ``settings.OBAN_POWERTOOLS`` (``--queues`` wins)."""
    from django.conf import settings

    options = getattr(settings, SETTING, None)
    if not isinstance(options, Mapping):
        raise ConfigError(SETTING, "not set in the Django settings", f"Add: {EXAMPLE}")
    chosen: Any = parse_queues(queues) if queues else options.get("QUEUES")
    if not isinstance(chosen, Mapping) or not chosen:
        raise ConfigError(
            f"{SETTING}['QUEUES']",
            "no queues: a node without queues never leads, so cron would not run",
            'Set "QUEUES": {"default": 10}, or pass --queues default=10.',
        )
    imports = options.get("IMPORTS", ())
    oban = options.get("OBAN", {})
    if isinstance(imports, str) or not all(isinstance(m, str) for m in imports):
        raise ConfigError(f"{SETTING}['IMPORTS']", "must be a list of module names", "")
    if not isinstance(oban, Mapping):
        raise ConfigError(f"{SETTING}['OBAN']", "must be a dict of Oban(...) options", "")
    return WorkerSettings(
        powertools=_powertools(options.get("POWERTOOLS")),
        queues=dict(chosen),
        imports=tuple(imports),
        oban=dict(oban),
    )


async def run(worker: WorkerSettings, *, node: str | None = None) -> None:
    """Run the node until SIGINT or SIGTERM."""
    from oban import Oban

    for module in worker.imports:
        importlib.import_module(module)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    powertools = worker.powertools
    pool = await Oban.create_pool(powertools.config.database_url, min_size=1, max_size=5)
    try:
        async with powertools:
            options: dict[str, Any] = dict(worker.oban)
            if node is not None:
                options["node"] = node
            oban = Oban(pool=pool, queues=worker.queues, **options, **powertools.oban_options())
            async with oban:
                log.info(
                    "oban worker started: node %s, queues %s", oban._node, sorted(worker.queues)
                )
                await stop.wait()
                log.info("oban worker stopping")
    finally:
        await pool.close()
