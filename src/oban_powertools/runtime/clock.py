"""What the scheduler loop needs from the outside: oban's leadership and the time."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "LeaderLike", "SystemClock"]


class LeaderLike(Protocol):
    """What the scheduler needs from oban's leader: whether this node leads now."""

    @property
    def is_leader(self) -> bool: ...


class Clock(Protocol):
    """Time for the loop. The real one is :class:`SystemClock`; tests may run faster."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    async def sleep_until(self, target: datetime, stopping: asyncio.Event, limit: float) -> None:
        """Return when the clock reaches ``target``, ``stopping`` is set, or ``limit``
        real seconds passed, whichever is first."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, target: datetime, stopping: asyncio.Event, limit: float) -> None:
        seconds = min(max((target - self.now()).total_seconds(), 0.0), limit)
        with suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=seconds)
