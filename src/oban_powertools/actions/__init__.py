"""The action pipeline and the registry of actions (one module per family)."""

from .base import REGISTRY, Action
from .errors import ActionError
from .pipeline import Pipeline
from .preview import ActionResult, Preview
from .registry import all_actions, get_action

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
