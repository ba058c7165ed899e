"""A job's deadline: ``deadline=timedelta(...)`` on the worker or the insert, or an
absolute time on the insert. Stored at insert as ``meta.deadline_at`` (ISO 8601, UTC), so
every node (and the job page) reads the same instant.

A job that starts after its deadline is cancelled ("deadline passed"); one still running
at its deadline is cancelled ("deadline passed while running").
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import InvalidArgument

__all__ = ["DEADLINE_KEY", "NOT_STARTED", "WHILE_RUNNING", "deadline_at", "stored_deadline"]

DEADLINE_KEY = "deadline_at"
NOT_STARTED = "deadline passed"
WHILE_RUNNING = "deadline passed while running"


def deadline_at(deadline: timedelta | datetime | None, now: datetime) -> datetime | None:
    """The instant a deadline given at insert means (relative ones count from ``now``)."""
    if deadline is None:
        return None
    if isinstance(deadline, timedelta):
        if deadline <= timedelta(0):
            raise InvalidArgument(f"deadline={deadline!r}: must be positive")
        return now + deadline
    if isinstance(deadline, datetime):
        if deadline.tzinfo is None:
            raise InvalidArgument(
                f"deadline={deadline!r}: give an aware datetime (a naive one has no zone)"
            )
        return deadline.astimezone(UTC)
    raise InvalidArgument(f"deadline={deadline!r}: give a timedelta or an aware datetime")


def stored_deadline(meta: Any) -> datetime | None:
    """``meta.deadline_at`` of a job, or None (absent or not a time)."""
    if not isinstance(meta, dict):
        return None
    value = meta.get(DEADLINE_KEY)
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
