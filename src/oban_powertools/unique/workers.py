"""A worker's own ``unique`` option, and the meta a unique job carries.

Jobs built with ``Worker.new`` carry the option in ``job.extra``; the cron scheduler
builds its jobs from stored entries (a worker name), so it asks the worker class.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cache
from typing import Any

from .keys import unique_key
from .options import UniqueSpec, parse_unique

__all__ = ["unique_meta", "worker_unique"]

logger = logging.getLogger(__name__)


@cache
def worker_unique(worker: str) -> UniqueSpec | None:
    """The ``unique`` option of the worker class named ``worker`` (oban's registry, or an
    import of its module as oban's executor does), None when it has none or cannot be
    found in this process."""
    from oban.worker import resolve_worker

    try:
        cls = resolve_worker(worker)
    except Exception:  # not importable here: the scheduler cannot know, as oban's cron
        logger.debug("worker %s not found in this process; not treated as unique", worker)
        return None
    options = getattr(cls, "_opts", None)
    value = options.get("unique") if isinstance(options, Mapping) else None
    return parse_unique(value, where=f"{worker}: unique")


def unique_meta(
    spec: UniqueSpec, *, worker: str, queue: str, args: Mapping[str, Any], meta: Mapping[str, Any]
) -> dict[str, Any]:
    """``meta`` with the job's unique options and key: ``meta.unique`` (kept, shown on its
    page) and ``meta.unique_key`` (held while the job is in its unique states)."""
    key = unique_key(spec, worker=worker, queue=queue, args=args, meta=meta)
    return {**meta, "unique": {**spec.describe(), "key": key}, "unique_key": key}
