"""One-call operator API for scripts and tests: preview + execute through the same pipeline.

>>> await powertools.operator.pause_cron_entry(actor, "nightly_sync", reason="upstream outage")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .pipeline import Pipeline
from .preview import ActionResult


class Operator:
    def __init__(self, pipeline: Pipeline, surface: str = "api") -> None:
        self._pipeline = pipeline
        self._surface = surface

    async def _run(
        self,
        actor: Any,
        action: str,
        targets: str | list[str],
        reason: str | None,
        params: dict[str, Any] | None = None,
    ) -> ActionResult:
        """Preview and confirm one action from this operator's surface."""
        return await self._pipeline.run(
            actor, action, targets, reason=reason, params=params, surface=self._surface
        )

    async def pause_cron_entry(
        self, actor: Any, name: str, *, reason: str, expires_in_minutes: int | None = None
    ) -> ActionResult:
        params = {"expires_in_minutes": expires_in_minutes} if expires_in_minutes else {}
        return await self._run(actor, "pause_cron_entry", name, reason, params)

    async def resume_cron_entry(
        self, actor: Any, name: str, *, reason: str | None = None
    ) -> ActionResult:
        return await self._run(actor, "resume_cron_entry", name, reason)

    async def run_cron_entry(
        self, actor: Any, name: str, *, reason: str | None = None
    ) -> ActionResult:
        return await self._run(actor, "run_cron_entry", name, reason)

    async def pause_queue(self, actor: Any, queue: str, *, reason: str) -> ActionResult:
        return await self._run(actor, "pause_queue", queue, reason)

    async def resume_queue(
        self, actor: Any, queue: str, *, reason: str | None = None
    ) -> ActionResult:
        return await self._run(actor, "resume_queue", queue, reason)

    async def scale_queue(self, actor: Any, queue: str, limit: int, *, reason: str) -> ActionResult:
        return await self._run(actor, "scale_queue", queue, reason, {"limit": limit})

    async def set_queue_limits(
        self,
        actor: Any,
        queue: str,
        *,
        reason: str,
        global_limit: int | None = None,
        rate_allowed: int | None = None,
        rate_period: int | None = None,
        revert: bool = False,
    ) -> ActionResult:
        """The queue's limits as they should be (one left out: no such limit), or
        ``revert=True``: the code's declaration again."""
        params: dict[str, Any] = (
            {"revert": True}
            if revert
            else {
                "global_limit": global_limit,
                "rate_allowed": rate_allowed,
                "rate_period": rate_period,
            }
        )
        return await self._run(actor, "set_queue_limits", queue, reason, params)

    async def retry_jobs(
        self, actor: Any, ids: Sequence[int], *, reason: str | None = None
    ) -> ActionResult:
        return await self._run(actor, "retry_job", [str(i) for i in ids], reason)

    async def cancel_jobs(self, actor: Any, ids: Sequence[int], *, reason: str) -> ActionResult:
        return await self._run(actor, "cancel_job", [str(i) for i in ids], reason)

    async def discard_jobs(self, actor: Any, ids: Sequence[int], *, reason: str) -> ActionResult:
        return await self._run(actor, "discard_job", [str(i) for i in ids], reason)
