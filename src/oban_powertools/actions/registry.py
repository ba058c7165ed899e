"""Every action, by name: the one place that knows the family modules.

The families register their actions on import (``@register`` in :mod:`.base`); importing
them here keeps :mod:`.base` free of its own families, so the layers inside ``actions``
run one way: pipeline, registry -> families -> base -> errors.
"""

from __future__ import annotations

from . import chains, cron, jobs, lifeline, limits, queues, workflows
from .base import REGISTRY, Action
from .errors import UnknownAction

__all__ = ["all_actions", "get_action"]

FAMILIES = (chains, cron, jobs, lifeline, limits, queues, workflows)


def get_action(name: str) -> Action:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownAction(name) from None


def all_actions() -> list[Action]:
    return list(REGISTRY.values())
