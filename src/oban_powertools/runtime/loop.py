"""The lifecycle the runtime's background loops share: one task per node, started, and
asked to stop at its next safe point.

:class:`BackgroundLoop` owns the task; :class:`LeaderPassLoop` runs a pass every
``interval`` seconds while this node leads (the repairs); :class:`MinuteLoop` runs a tick
per minute on a :class:`.clock.Clock` (the scheduler, the rollup).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from datetime import datetime
from typing import ClassVar

from ..errors import InvalidArgument
from .clock import Clock, LeaderLike
from .failures import log_error

__all__ = ["STOP_TIMEOUT", "BackgroundLoop", "LeaderPassLoop", "MinuteLoop"]

# Long enough for an in-flight pass to commit, short enough not to hang shutdown.
STOP_TIMEOUT = 5.0


class BackgroundLoop:
    """One background task. Subclasses name it and implement :meth:`_loop`, which must
    return soon after ``_stopping`` is set."""

    label: ClassVar[str]  # as the logs name the loop: "job rollup"
    task_name: ClassVar[str]
    node: str

    def __init__(self) -> None:
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def _logger(self) -> logging.Logger:
        # Logged under the concrete loop's module, the name operators filter on.
        return logging.getLogger(type(self).__module__)

    def _describe(self) -> str:
        return f"{self.label} on {self.node}"

    async def start(self) -> None:
        # A fresh event: an old one may be bound to the event loop of a previous start.
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name=self.task_name)

    async def stop(self) -> None:
        # Cancelling mid-transaction could strand a pooled connection, so the loop is
        # asked to stop at its next safe point and only cancelled if that takes too long.
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(task, timeout=STOP_TIMEOUT)
        except TimeoutError:
            self._logger.warning("%s did not stop in time; cancelled", self._describe())
        except asyncio.CancelledError:
            pass

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _loop(self) -> None:
        raise NotImplementedError


class LeaderPassLoop(BackgroundLoop):
    """Runs :meth:`_pass` every ``interval`` seconds, only while this node leads. A failed
    pass is logged; the next one retries."""

    def __init__(self, *, leader: LeaderLike, node: str, interval: float) -> None:
        super().__init__()
        self._leader = leader
        self.node = node
        self.interval = interval

    async def _pass(self) -> None:
        raise NotImplementedError

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval)
            if self._stopping.is_set():
                break
            if not self._leader.is_leader:
                continue
            try:
                await self._pass()
            except asyncio.CancelledError:
                raise
            except Exception:
                self._logger.exception("%s failed; retrying next pass", self._describe())


class MinuteLoop(BackgroundLoop):
    """Runs :meth:`_tick` then sleeps until :meth:`_wake_at` (at most ``poll_interval``
    real seconds, so leadership arriving is noticed soon). A failed tick is logged
    without the database's DETAIL; the next one retries."""

    def __init__(self, *, node: str, clock: Clock, poll_interval: float) -> None:
        if poll_interval <= 0:
            raise InvalidArgument("poll_interval must be positive")
        super().__init__()
        self.node = node
        self._clock = clock
        self._poll_interval = poll_interval

    async def _tick(self) -> None:
        raise NotImplementedError

    def _wake_at(self, now: datetime) -> datetime:
        raise NotImplementedError

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._tick()
            except asyncio.CancelledError:
                break
            except Exception as exc:
                log_error("%s failed; retrying", self._describe(), error=exc)
            await self._clock.sleep_until(
                self._wake_at(self._clock.now()), self._stopping, self._poll_interval
            )
