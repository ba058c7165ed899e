"""The action pipeline and the registry of actions (one module per family)."""

from .base import REGISTRY, Action, all_actions, get_action
from .errors import ActionError
from .pipeline import ActionResult, Pipeline, Preview

__all__ = [
    "REGISTRY",
    "Action",
    "ActionError",
    "ActionResult",
    "Pipeline",
    "Preview",
    "all_actions",
    "get_action",
]
