"""Marking a field of an args schema sensitive.

``Annotated[str, Sensitive()]`` (dataclasses and pydantic models) or
``dataclasses.field(metadata={"sensitive": True})``. At enqueue the paths of the sensitive
values a job holds go to its ``meta.redact`` (``["card.number", "cards[0].number"]``, the
key paths :class:`oban_powertools.display.Display` walks), and every surface that shows
the job's data masks them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["REDACT_KEY", "Sensitive", "is_sensitive"]

# Where a job keeps the paths of its sensitive values.
REDACT_KEY = "redact"


@dataclass(frozen=True, slots=True)
class Sensitive:
    """``Annotated[T, Sensitive()]``: the value is never shown on any surface."""


def is_sensitive(metadata: Iterable[object]) -> bool:
    return any(isinstance(m, Sensitive) or m is Sensitive for m in metadata)
